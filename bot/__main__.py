"""`python -m bot [run | migrate | keygen | rotate-keys]`; any start-up error is one line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from agent.settings import MissingSettingError, Settings
from bot.envfile import ask_first_run_questions, create_env_file
from bot.startup import StartupError, check_settings, migrate, open_database, read_settings
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
            return rotate_keys(read_settings())
        if args.command == "migrate":
            migrated(read_settings()).dispose()
            return 0
        return run()
    except (StartupError, MissingSettingError, EncryptionKeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def rotate_keys(settings: Settings) -> int:
    settings.require("token_encryption_keys")
    cipher = TokenCipher(settings.token_encryption_keys)
    database = migrated(settings)
    count = database.run_sync(lambda session: rotate_all_tokens(session, cipher=cipher))
    database.dispose()
    print(f"Re-encrypted {count} linked account(s) under the first key.")
    return 0


def migrated(settings: Settings) -> Database:
    database = open_database(settings)
    migrate(database)
    return database


def run() -> int:
    if create_env_file(ENV_FILE, ENV_EXAMPLE):
        print(f"Wrote {ENV_FILE} from {ENV_EXAMPLE} with a new TOKEN_ENCRYPTION_KEYS.")
    settings = read_settings()
    if ask_first_run_questions(ENV_FILE, settings):
        settings = read_settings()
    from bot.serve import run as serve  # imported late: keygen must not need the Slack stack

    check_settings(settings)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
