"""SMS gateways: `console` for development, `http` for a real platform (section 7).

Another provider is one more subclass of `SmsGateway` and one entry in `PROVIDERS`.
"""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from typing import ClassVar

import aiohttp

from lovewire.config import Settings

__all__ = ["PROVIDERS", "ConsoleSms", "HttpSms", "SmsGateway", "SmsSendError", "sms_text"]

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0


class SmsSendError(Exception):
    """The platform did not accept the message."""


def sms_text(code: str, lang: str) -> str:
    """The text of a verification message."""
    if lang == "en":
        return f"[lovewire] Your verification code is {code}. It is valid for 5 minutes."
    return f"【lovewire】您的验证码是{code}，5分钟内有效。"


class SmsGateway(ABC):
    """Sends one verification code; raises SmsSendError when it could not."""

    name: ClassVar[str]

    async def start(self) -> None:
        """Open what the provider needs."""

    async def close(self) -> None:
        """Release it."""

    @abstractmethod
    async def send(self, tel: str, code: str, text: str) -> None: ...


class ConsoleSms(SmsGateway):
    """Print the code on standard output (development only)."""

    name = "console"

    async def send(self, tel: str, code: str, text: str) -> None:
        print(f"lovewire sms to {tel}: code {code}", file=sys.stdout, flush=True)


class HttpSms(SmsGateway):
    """POST {tel, code, text} as JSON to the configured URL; any 2xx is a sent message."""

    name = "http"

    def __init__(self, url: str, token: str = "", timeout: float = SEND_TIMEOUT) -> None:
        if not url:
            raise ValueError("LOVEWIRE_SMS_URL is required with LOVEWIRE_SMS_PROVIDER=http")
        self.url = url
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self.timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, tel: str, code: str, text: str) -> None:
        if self._session is None:
            raise SmsSendError("gateway not started")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self._session.post(
                self.url, json={"tel": tel, "code": code, "text": text}, headers=headers
            ) as resp:
                if not 200 <= resp.status < 300:
                    raise SmsSendError(f"SMS platform answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SmsSendError(f"SMS platform unreachable: {type(exc).__name__}") from exc


PROVIDERS: dict[str, type[SmsGateway]] = {"console": ConsoleSms, "http": HttpSms}


def gateway_from_settings(settings: Settings) -> SmsGateway:
    """Build the configured provider."""
    if settings.sms_provider == "http":
        return HttpSms(settings.sms_url, settings.sms_token)
    return ConsoleSms()
