"""The Polyv account credentials, read from AWS Secrets Manager through Powertools' parameters
utility (cached for ``max_age`` seconds, refreshable on demand after a rotation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from ..domain.ports import CredentialsError, CredentialsSource
from .aws_errors import describe_aws_error, misconfigured

__all__ = [
    "CredentialsError",
    "CredentialsSource",
    "PolyvCredentials",
    "SecretsManagerCredentials",
    "keep_secrets_out_of_wire_logs",
]

# botocore logs whole response bodies at DEBUG, GetSecretValue's (the secretkey) included, whenever
# the root logger is at DEBUG (Lambda's application log level, a test harness...); urllib3 logs each
# request line, the query string included, which holds get-video-msg's sign. Cap them at INFO.
WIRE_LOGGERS = ("botocore", "boto3", "urllib3")


def keep_secrets_out_of_wire_logs() -> None:
    for name in WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


@dataclass(frozen=True, slots=True)
class PolyvCredentials:
    userid: str
    secretkey: str = field(repr=False)  # repr=False: never shown by logging or tracebacks


class SecretsManagerCredentials:
    """Secret JSON ``{"userid": "...", "secretkey": "..."}`` in Secrets Manager."""

    def __init__(self, secret_id: str, provider: SecretsProvider, max_age: int = 300) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._max_age = max_age

    def get(self, *, refresh: bool = False) -> PolyvCredentials:
        try:
            value: Any = self._provider.get(
                self._secret_id, transform="json", max_age=self._max_age, force_fetch=refresh
            )
        except TransformParameterError:
            # `from None`: the JSON error's context could quote part of the secret.
            raise CredentialsError(
                f'secret {self._secret_id!r} is not JSON; expected {{"userid": ..., "secretkey": ...}}',
                misconfigured=True,
            ) from None
        except GetParameterError as exc:
            # Powertools raises it while handling the SDK's error, without ``from``: the context
            cause = exc.__cause__ or exc.__context__ or exc
            code = describe_aws_error(cause)
            raise CredentialsError(
                f"cannot read secret {self._secret_id!r}: {code}",
                misconfigured=misconfigured(cause),
                code=code,
            ) from None
        return parse_credentials(value, self._secret_id)


def parse_credentials(value: object, secret_id: str) -> PolyvCredentials:
    if not isinstance(value, dict):
        raise CredentialsError(
            f"secret {secret_id!r} must be a JSON object with userid and secretkey", misconfigured=True
        )
    userid, secretkey = value.get("userid"), value.get("secretkey")
    if not isinstance(userid, str) or not userid:
        raise CredentialsError(f"secret {secret_id!r} has no string 'userid'", misconfigured=True)
    if not isinstance(secretkey, str) or not secretkey:
        raise CredentialsError(f"secret {secret_id!r} has no string 'secretkey'", misconfigured=True)
    return PolyvCredentials(userid=userid, secretkey=secretkey)
