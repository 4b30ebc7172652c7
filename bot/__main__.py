"""`python -m bot [run | keygen | rotate-keys]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from agent.settings import WHERE_TO_GET, MissingSettingError, Settings
from bot.envfile import ask_for_missing, create_env_file
from storage.crypto import EncryptionKeyError, TokenCipher, generate_key
from storage.db import Database
from storage.repositories import rotate_all_tokens

ENV_FILE = Path(".env")
ENV_EXAMPLE = Path(".env.example")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Taiga Planner")
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "migrate", "keygen", "rotate-keys"],
        help="run the bot (default), upgrade the database schema, print a new encryption key,"
        " or re-encrypt stored tokens under the first key",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "keygen":
            print(generate_key())
            return 0
        if args.command == "rotate-keys":
            return rotate_keys(Settings())
        if args.command == "migrate":
            migrate(Settings()).dispose()
            return 0
        return run()
    except (MissingSettingError, EncryptionKeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def rotate_keys(settings: Settings) -> int:
    settings.require("token_encryption_keys")
    cipher = TokenCipher(settings.token_encryption_keys)
    database = migrate(settings)
    count = database.run_sync(lambda session: rotate_all_tokens(session, cipher=cipher))
    database.dispose()
    print(f"Re-encrypted {count} linked account(s) under the first key.")
    return 0


def migrate(settings: Settings) -> Database:
    database = Database(settings.database_url.get_secret_value())
    database.migrate()
    return database


def run() -> int:
    if create_env_file(ENV_FILE, ENV_EXAMPLE):
        print(f"Wrote {ENV_FILE} from {ENV_EXAMPLE} with a new TOKEN_ENCRYPTION_KEYS.")
    settings = Settings()
    missing = {
        name.upper(): WHERE_TO_GET.get(name, "")
        for name in required_to_run(settings)
        if not getattr(settings, name)
    }
    if missing and ask_for_missing(ENV_FILE, missing):
        settings = Settings()
    from bot.serve import run as serve  # imported late: keygen must not need the Slack stack

    settings.require(*required_to_run(settings))
    TokenCipher(settings.token_encryption_keys)  # a malformed key stops start-up here
    migrate(settings).dispose()
    serve(settings)
    return 0


def required_to_run(settings: Settings) -> list[str]:
    """Socket Mode (the manifest's default) needs the app token, HTTP mode the signing secret;
    with neither set, ask for the app token."""
    names = ["slack_bot_token", "anthropic_api_key", "token_encryption_keys"]
    http_mode = bool(settings.slack_signing_secret) and not settings.socket_mode
    names.append("slack_signing_secret" if http_mode else "slack_app_token")
    return names


if __name__ == "__main__":
    sys.exit(main())
