"""The Polyv accounts' credentials, read from AWS Secrets Manager through Powertools' parameters
utility (cached for ``max_age`` seconds, refreshable on demand after a rotation).

The secret holds one account, ``{"userid": ..., "secretkey": ...}`` (the form of every deployment
before several accounts), or several, ``{"accounts": [{"userid": ..., "secretkey": ...}, ...]}``.
Each account's Polyv client reads its own account's credentials (:class:`AccountCredentials`), so
a rotation of one account's secretkey is read by that account's next call, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from ..domain.ports import CredentialsError, CredentialsSource
from .aws_errors import describe_aws_error, misconfigured

__all__ = [
    "AccountCredentials",
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
    """Secret JSON ``{"userid": "...", "secretkey": "..."}`` or ``{"accounts": [...]}`` in Secrets
    Manager: :meth:`accounts` are all of them, in their order; :meth:`get` the first."""

    def __init__(self, secret_id: str, provider: SecretsProvider, max_age: int = 300) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._max_age = max_age

    def get(self, *, refresh: bool = False) -> PolyvCredentials:
        return self.accounts(refresh=refresh)[0]

    def accounts(self, *, refresh: bool = False) -> tuple[PolyvCredentials, ...]:
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
        return parse_accounts(value, self._secret_id)


class AccountCredentials:
    """One account's credentials out of a secret of several (its Polyv client's source)."""

    def __init__(self, source: SecretsManagerCredentials, userid: str) -> None:
        self._source = source
        self._userid = userid

    def get(self, *, refresh: bool = False) -> PolyvCredentials:
        found = next((c for c in self._source.accounts(refresh=refresh) if c.userid == self._userid), None)
        if found is None:
            raise CredentialsError(
                f"the Polyv secret no longer holds account {self._userid!r}", misconfigured=True
            )
        return found


#: The most accounts one secret holds: Secrets Manager's 64 KB would take far more; a deployment
#: of more accounts than this is a mistake to say so about, not to run with.
MAX_ACCOUNTS = 50


def parse_accounts(value: object, secret_id: str) -> tuple[PolyvCredentials, ...]:
    """The secret's accounts: the one-account form, or ``accounts``; every error names the
    secret and the account's place, never a secretkey."""
    if not isinstance(value, dict):
        raise CredentialsError(
            f"secret {secret_id!r} must be a JSON object with userid and secretkey", misconfigured=True
        )
    if "accounts" not in value:
        return (parse_credentials(value, secret_id),)
    entries = value["accounts"]
    if not isinstance(entries, list) or not entries or len(entries) > MAX_ACCOUNTS:
        raise CredentialsError(
            f"secret {secret_id!r}: 'accounts' must be a list of 1 to {MAX_ACCOUNTS} objects with "
            "userid and secretkey",
            misconfigured=True,
        )
    accounts = tuple(parse_credentials(e, f"{secret_id}'s accounts[{i}]") for i, e in enumerate(entries))
    userids = [a.userid for a in accounts]
    if len(set(userids)) != len(userids):
        raise CredentialsError(f"secret {secret_id!r} lists an account twice", misconfigured=True)
    return accounts


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
