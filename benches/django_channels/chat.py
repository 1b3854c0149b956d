"""The demo chat's wire format on Django Channels with channels_redis,
served by Uvicorn: the stack the deployments ferricorn's channel layer
replaces run. Used by benches/fanout.sh (`FANOUT_DJANGO=1`).

    REDIS_URL=redis://127.0.0.1:PORT uvicorn chat:application --workers 2

Settings are made here (no project): Django needs only the channel layer.
"""

import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")]},
        }
    },
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


class Chat(AsyncWebsocketConsumer):
    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()
        await self.send(
            text_data=dumps(
                {"type": "welcome", "id": self.channel_name, "worker": os.getpid(), "room": self.room}
            )
        )

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            await self.channel_layer.group_send(
                self.room, {"type": "chat.message", "text": text_data, "from": self.channel_name}
            )

    async def chat_message(self, event):
        await self.send(
            text_data=dumps(
                {"type": "message", "room": self.room, "from": event["from"], "text": event["text"]}
            )
        )


application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/chat/<str:room>", Chat.as_asgi())])}
)
