"""What an AWS SDK error means to this package: its code, short and free of any item's content,
and whether it is an outage (retry later) or a configuration a person must fix."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


def describe_aws_error(exc: BaseException) -> str:
    """The AWS error code (or the SDK's exception name): short, and never an item's content."""
    return error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__


#: AWS error codes no retry can heal: a person must fix the configuration (the table's name, the
#: role's or the operator's permissions, the credentials, the region).
MISCONFIGURED = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "NoCredentialsError",
        "NoRegionError",
        "PartialCredentialsError",
        "ProfileNotFound",
        "DecryptionFailure",
        "InvalidRequestException",
        "InvalidParameterException",
    }
)


def misconfigured(exc: BaseException) -> bool:
    """Whether an SDK error means the configuration is wrong rather than a service unavailable."""
    return isinstance(exc, ClientError | BotoCoreError) and describe_aws_error(exc) in MISCONFIGURED
