"""Gateway mode: authgate in front of an existing registry (`settings.upstream`).

`client` holds the pooled connection to the upstream and maps its failures to OCI errors;
`credentials` says who authgate is to the upstream; `uploads` tracks the digest of every upload
session as its bytes pass; `catalog` filters the upstream's catalog by the caller's permissions.
`backend` is the `routes.Backend` that uses them, opened by `authgate.backends`.
"""
