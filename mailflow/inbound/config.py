"""Inbound settings (env `MAILFLOW_INBOUND__<FIELD>`).

List settings accept a comma list (`exe,scr`) or JSON (`["exe","scr"]`). The defaults are
the safe ones: executables and script types blocked, everything else allowed, no verdict
but a virus rejects, no sender allowlist, no rate limit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from mailflow.envlist import split_list

# Extensions Windows, macOS or a shell will execute on a double click (or that exist only
# to carry such code). Blocked by name; real executables are also caught by their bytes.
DEFAULT_BLOCKED_EXTENSIONS: tuple[str, ...] = (
    "ade", "adp", "apk", "app", "appx", "appxbundle", "bas", "bat", "cab", "chm", "cmd",
    "com", "cpl", "dll", "dmg", "exe", "gadget", "hta", "inf", "ins", "isp", "jar", "js",
    "jse", "lib", "lnk", "mde", "msc", "msi", "msix", "msp", "mst", "nsh", "pif", "ps1",
    "psm1", "reg", "scf", "scr", "sct", "shb", "sys", "vb", "vbe", "vbs", "vxd", "wsc",
    "wsf", "wsh",
)  # fmt: skip

# MIME types of executables and installers, as declared or as detected from the bytes.
DEFAULT_BLOCKED_CONTENT_TYPES: tuple[str, ...] = (
    "application/x-msdownload",
    "application/x-dosexec",
    "application/x-ms-dos-executable",
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-elf",
    "application/x-mach-binary",
    "application/x-sharedlib",
    "application/x-msi",
    "application/x-ms-installer",
    "application/java-archive",
    "application/x-java-archive",
    "application/x-sh",
    "application/x-csh",
    "application/x-bat",
    "application/hta",
    "application/x-ms-shortcut",
    "application/vnd.android.package-archive",
    "application/x-apple-diskimage",
)

StrList = Annotated[tuple[str, ...], NoDecode]


_LIST_FIELDS = (
    "blocked_extensions",
    "blocked_content_types",
    "allowed_extensions",
    "allowed_content_types",
    "allowed_sender_domains",
)


class InboundSettings(BaseModel):
    """Policy and limits for received mail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_email_bytes: int = Field(default=40 * 1024 * 1024, ge=1)
    max_attachment_bytes: int = Field(default=35 * 1024 * 1024, ge=1)

    blocked_extensions: StrList = DEFAULT_BLOCKED_EXTENSIONS
    blocked_content_types: StrList = DEFAULT_BLOCKED_CONTENT_TYPES
    allowed_extensions: StrList = Field(
        default=(), description="When set, only these extensions pass."
    )
    allowed_content_types: StrList = Field(
        default=(), description="When set, only these MIME types pass ('image/*' works)."
    )

    reject_virus: bool = Field(default=True, description="Reject when SES's virus verdict FAILs.")
    reject_spam: bool = False
    reject_spf_fail: bool = False
    reject_dkim_fail: bool = False
    reject_dmarc_fail: bool = False
    allowed_sender_domains: StrList = Field(
        default=(), description="Envelope/From sender domains accepted; empty = everyone."
    )
    rate_limit_per_hour: int = Field(
        default=0, ge=0, description="Emails per sender per hour; 0 = no limit."
    )
    unknown_app: Literal["default", "reject"] = Field(
        default="default", description="What `_x@domain` does when x is not an app."
    )

    presigned_url_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    idempotency_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=3600)
    payload_prefix: str = Field(
        default="payloads/", description="Attachments-bucket prefix of offloaded large JSON."
    )
    raw_key_prefix: str = Field(
        default="",
        description="Key prefix SES's receipt rule writes raw mail under in the raw bucket;"
        " a notification naming any other key is refused ('' accepts the whole bucket).",
    )
    sanitize_html: bool = True

    @field_validator(*_LIST_FIELDS, mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator(*_LIST_FIELDS)
    @classmethod
    def _normalise(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower().lstrip(".") for v in value if v.strip())
