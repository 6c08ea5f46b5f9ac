"""Configuration of the publishers (the root ``publish`` section)::

publish:
  mqtt:
    host: 127.0.0.1
    port: 1883
    username: khupho
    password: ...            # or KHUPHO_MQTT_PASSWORD
  webhooks:
    - url: https://example.org/hooks/khupho
      secret: ...            # HMAC-SHA256 key of the signature header
      event_types: [wrong_way, stopped_vehicle]
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Self

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from events.model import EventType
from ingest.config import ConfigModel

TopicPrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", max_length=100)]


class MqttConfig(ConfigModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    # Taken from KHUPHO_MQTT_PASSWORD when not given here.
    password: SecretStr | None = None
    tls: bool = False
    client_id: str = Field(default="khupho", min_length=1, max_length=64)
    topic_prefix: TopicPrefix = "khupho"
    qos: Literal[0, 1, 2] = 1
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0.0)
    reconnect_max_s: float = Field(default=30.0, gt=0.0)
    # Messages waiting while the broker is slow or down; beyond this the oldest are dropped (counted).
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    # Event types published on <prefix>/events; empty: all.
    event_types: list[EventType] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _password_from_env(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("password") is None and os.environ.get("KHUPHO_MQTT_PASSWORD"):
            data = {**data, "password": os.environ["KHUPHO_MQTT_PASSWORD"]}
        return data

    @model_validator(mode="after")
    def _reconnect_range(self) -> Self:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class WebhookConfig(ConfigModel):
    url: AnyHttpUrl
    # Key of the X-Khupho-Signature header (HMAC-SHA256 of "<timestamp>.<body>").
    secret: SecretStr = Field(min_length=16)
    # Event types sent; empty: all. Segment level changes are sent when traffic_levels is true.
    event_types: list[EventType] = Field(default_factory=list)
    traffic_levels: bool = True
    timeout_s: float = Field(default=5.0, gt=0.0, le=120.0)
    max_attempts: int = Field(default=5, ge=1, le=50)
    backoff_initial_s: float = Field(default=1.0, gt=0.0)
    backoff_max_s: float = Field(default=60.0, gt=0.0)
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)


class PublishConfig(ConfigModel):
    mqtt: MqttConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
