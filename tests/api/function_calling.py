"""Model Studio's function-calling example (the "Function Calling" guide), shared by the SDK tests:
its two tools, its tool functions, and its loops, as written there, with the client passed in.
"""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_time",
            "description": "当你想知道现在的时间时非常有用。",
            "parameters": {},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "当你想查询指定城市的天气时非常有用。",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "城市或县区，比如北京市、杭州市、余杭区等。",
                    }
                },
                "required": ["location"],
            },
        },
    },
]


def get_current_weather(arguments: dict[str, Any]) -> str:
    weather_conditions = ["晴天", "多云", "雨天"]
    random_weather = random.choice(weather_conditions)
    location = arguments["location"]
    return f"{location}今天是{random_weather}。"


def get_current_time() -> str:
    current_datetime = datetime.now()
    formatted_time = current_datetime.strftime("%Y-%m-%d %H:%M:%S")
    return f"当前时间：{formatted_time}。"


def run_tool(name: str, arguments: str) -> str:
    if name == "get_current_weather":
        return get_current_weather(json.loads(arguments))
    return get_current_time()
