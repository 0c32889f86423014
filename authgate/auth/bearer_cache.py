"""`VerifiedTokens`: a bearer token already verified is not verified again until it expires.

Why: docker sends the same token with every request of a pull or push (each layer `HEAD`, each
manifest), and verifying one costs ~350 us here, most of it PyJWT checking the base64 of our
~1.2 KB header (the `x5c` certificate) character by character, twice. The token's text is the key:
the same bytes verified once give the same answer until `exp` (plus the leeway verification
allows) passes, because signing keys only change at a restart. Only tokens that verified are kept,
so garbage cannot fill the cache, and the number kept is bounded.

Whether the token's account is still enabled is not cached here: identify() asks the account cache
on every request, which is what makes a disabled user's tokens stop within a second.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from authgate.auth.tokens import TokenService, VerifiedToken

#: About 1.5 KB each: a few MB at most.
MAX_TOKENS = 4096


class VerifiedTokens:
    def __init__(self, tokens: TokenService, size: int = MAX_TOKENS) -> None:
        self.tokens = tokens
        self.size = size
        self._verified: OrderedDict[str, VerifiedToken] = OrderedDict()

    def verify(self, token: str) -> VerifiedToken:
        """Like `TokenService.verify`: raises `InvalidToken` for a token it would refuse."""
        verified = self._verified.get(token)
        if verified is not None:
            if time.time() < verified.expires_at + self.tokens.leeway:
                return verified
            del self._verified[token]
        verified = self.tokens.verify(token)
        self._verified[token] = verified
        if len(self._verified) > self.size:
            self._verified.popitem(last=False)
        return verified
