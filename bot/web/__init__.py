"""The web side of the cabinet (SPEC "The web side"): the Telegram Mini App cabinet at /app and
the signed pay links at /pay/<token>, added to the bot's aiohttp server when PUBLIC_URL is set
(bot/web/app.py). The security logic lives in services/web_auth.py."""
