"""The referrers index of gateway mode: what `GET /v2/<name>/referrers/<digest>` lists when the
upstream has no referrers API (distribution 2.8 and 3.x have none).

The gateway reads every manifest pushed through it whole, so it knows each one's `subject`. A
manifest with a subject that the upstream accepted (201) gets a row: repository, digest, subject,
and what the referrers response shows of it (media type, size, artifact type, annotations). A
manifest `DELETE` by digest that the upstream accepted (202) removes the row; deleting a tag
leaves the manifest, so its row stays (as in embedded mode).

Manifests pushed to the upstream directly, bypassing authgate, are not indexed, and neither are
deletes made there (the upstream's own garbage collection included): the index is what passed
through authgate. The rows live in the shared database, so every replica answers the same.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from authgate.db.models import GatewayReferrer
from authgate.db.session import Database
from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest
from authgate.registry.manifest_format import Descriptor, ParsedManifest

log = logging.getLogger(__name__)


class ReferrerIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, repository: str, digest: Digest, media_type: str, size: int,
                     parsed: ParsedManifest) -> None:
        """Index a manifest the upstream stored, if it has a subject (else nothing to do).

        A failure is logged, not raised: the upstream already holds the manifest, and the client's
        push succeeded; the referrer is then missing from the listing until pushed again."""
        if parsed.subject is None:
            return
        row = GatewayReferrer(repository=repository, digest=str(digest), subject=str(parsed.subject.digest),
                              media_type=media_type, artifact_type=parsed.artifact_type, size=size,
                              annotations=parsed.annotations)
        try:
            async with self.db.session() as session:
                await session.execute(delete(GatewayReferrer).where(
                    GatewayReferrer.repository == repository, GatewayReferrer.digest == str(digest)))
                session.add(row)
        except IntegrityError:
            pass  # the same manifest pushed at the same moment by another request: it is indexed
        except SQLAlchemyError:
            log.exception("could not index referrer %s of %s in %s", digest, parsed.subject.digest, repository)

    async def forget(self, repository: str, digest: str) -> None:
        """The upstream deleted the manifest: it refers to nothing any more."""
        try:
            async with self.db.session() as session:
                await session.execute(delete(GatewayReferrer).where(
                    GatewayReferrer.repository == repository, GatewayReferrer.digest == digest))
        except SQLAlchemyError:
            log.exception("could not remove referrer %s of %s from the index", digest, repository)

    async def referrers(self, repository: str, subject: Digest) -> list[Descriptor]:
        """The manifests of `repository` whose subject is `subject`, by digest (503 if the database fails)."""
        try:
            async with self.db.session() as session:
                rows = (await session.execute(
                    select(GatewayReferrer)
                    .where(GatewayReferrer.repository == repository, GatewayReferrer.subject == str(subject))
                    .order_by(GatewayReferrer.digest)
                )).scalars().all()
        except SQLAlchemyError:
            log.exception("could not read the referrers of %s in %s", subject, repository)
            raise RegistryError(ErrorCode.UNAVAILABLE, "the referrers index is unavailable; try again later",
                                headers={"Retry-After": "5"}) from None
        found = []
        for row in rows:
            try:
                digest = Digest.parse(row.digest)
            except RegistryError:  # not written by record(): skip rather than fail the listing
                continue
            found.append(Descriptor(row.media_type, digest, row.size, artifact_type=row.artifact_type,
                                    annotations=row.annotations or None))
        return found
