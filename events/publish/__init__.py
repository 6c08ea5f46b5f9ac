"""Publishing events and traffic state to other systems: MQTT and webhooks.

Both consume the event bus and the traffic board through bounded, non-blocking
subscriptions: a broker or webhook target that is down never slows a camera;
what could not be delivered is counted.
"""

from events.publish.config import MqttConfig, PublishConfig, WebhookConfig

__all__ = ["MqttConfig", "PublishConfig", "WebhookConfig"]
