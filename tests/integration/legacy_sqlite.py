"""The schema as the bot built it before Alembic: SQLite only, counted in PRAGMA user_version.

Frozen here so a test can make a database as an older release left it and open it today.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        hash TEXT UNIQUE,
        parent_id INTEGER REFERENCES tasks(id),
        type TEXT NOT NULL,
        action TEXT,
        choice TEXT,
        prompt TEXT,
        status TEXT NOT NULL,
        status_rank INTEGER NOT NULL,
        progress INTEGER NOT NULL DEFAULT 0,
        status_reason TEXT,
        prefilter TEXT,
        result TEXT,
        next_actions TEXT,
        account_hash TEXT,
        chat_id INTEGER NOT NULL,
        thread_id INTEGER,
        user_id INTEGER NOT NULL,
        request_message_id INTEGER,
        status_message_id INTEGER,
        status_is_photo INTEGER NOT NULL DEFAULT 0,
        result_message_id INTEGER,
        result_file_id TEXT,
        delivery TEXT NOT NULL DEFAULT 'none',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX tasks_in_flight ON tasks(status_rank) WHERE status_rank < 4;
    CREATE INDEX tasks_delivery ON tasks(delivery) WHERE delivery IN ('pending', 'sending');
    CREATE INDEX tasks_parent ON tasks(parent_id);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT,
        first_name TEXT,
        language_code TEXT,
        created_at REAL NOT NULL,
        last_seen_at REAL NOT NULL
    );
    CREATE TABLE chats (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        title TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE prompt_requests (
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        action TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (chat_id, message_id)
    );
    """,
    # 2: the language each task's messages are shown in (its requester's).
    "ALTER TABLE tasks ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';",
    # 3: per-user preferences (/settings, /language).
    """
    CREATE TABLE user_settings (
        user_id INTEGER PRIMARY KEY,
        aspect TEXT,
        model TEXT,
        stylize INTEGER,
        raw INTEGER NOT NULL DEFAULT 0,
        speed TEXT,
        originals INTEGER NOT NULL DEFAULT 0,
        locale TEXT,
        updated_at REAL NOT NULL
    );
    CREATE INDEX tasks_user_recent ON tasks(user_id, id);
    """,
    # 4: access control, per-group settings and charged usage (issue 4).
    """
    CREATE TABLE bot_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE user_access (
        user_id INTEGER PRIMARY KEY,
        allowed INTEGER NOT NULL DEFAULT 0,
        banned INTEGER NOT NULL DEFAULT 0,
        daily_limit INTEGER,
        concurrent_limit INTEGER
    );
    CREATE TABLE chat_access (
        chat_id INTEGER PRIMARY KEY,
        allowed INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        daily_limit INTEGER,
        anyone_presses INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE usage (
        task_id INTEGER PRIMARY KEY REFERENCES tasks(id),
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        type TEXT NOT NULL,
        day TEXT NOT NULL,
        charged_at REAL NOT NULL
    );
    CREATE INDEX usage_user_day ON usage(user_id, day);
    CREATE INDEX usage_chat_day ON usage(chat_id, day);
    CREATE INDEX tasks_created ON tasks(created_at);
    """,
    # 5: user images uploaded to Discord, and their URLs (issue 3).
    """
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        file_unique_id TEXT NOT NULL,
        account_hash TEXT,
        url TEXT NOT NULL,
        ext TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        created_at REAL NOT NULL
    );
    CREATE INDEX uploads_file ON uploads(file_unique_id, created_at);
    """,
    # 6: who asked, as shown under results in groups.
    "ALTER TABLE tasks ADD COLUMN requester TEXT;",
    # 7: each job's request as a value (JSON), kept from the moment it is asked for, so the
    # queue of jobs waiting for a slot (status 'queued') survives a restart.
    """
    ALTER TABLE tasks ADD COLUMN request TEXT;
    CREATE INDEX tasks_queued ON tasks(id) WHERE status = 'queued';
    """,
    # 8: waiting states (aiogram FSM) kept across restarts, and what pruning looks up by age.
    """
    CREATE TABLE fsm_states (
        key TEXT PRIMARY KEY,
        state TEXT,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX fsm_states_updated ON fsm_states(updated_at);
    CREATE INDEX uploads_created ON uploads(created_at);
    CREATE INDEX prompt_requests_created ON prompt_requests(created_at);
    """,
    # 9: today's Midjourney in /settings (issue 13): draft mode, --exp, a style code, a
    # personalization code, reference weights, and whether prompts are translated.
    """
    ALTER TABLE user_settings ADD COLUMN draft INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE user_settings ADD COLUMN exp INTEGER;
    ALTER TABLE user_settings ADD COLUMN sref TEXT;
    ALTER TABLE user_settings ADD COLUMN personalize TEXT;
    ALTER TABLE user_settings ADD COLUMN sw INTEGER;
    ALTER TABLE user_settings ADD COLUMN ow INTEGER;
    ALTER TABLE user_settings ADD COLUMN translate INTEGER NOT NULL DEFAULT 1;
    """,
    # 10: the credits ledger (issue 14): every change to a balance, which is the ledger's sum.
    # The partial unique indexes make each task's hold and its settlement, and each Telegram
    # payment and its refund, happen at most once however often they are asked for.
    """
    CREATE TABLE credit_ledger (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        amount INTEGER NOT NULL,
        task_id INTEGER,
        charge_id TEXT,
        stars INTEGER,
        reason TEXT,
        actor_id INTEGER,
        created_at REAL NOT NULL
    );
    CREATE INDEX credit_ledger_user ON credit_ledger(user_id, id);
    CREATE INDEX credit_ledger_kind ON credit_ledger(kind, created_at);
    CREATE UNIQUE INDEX credit_ledger_hold ON credit_ledger(task_id) WHERE kind = 'reserve';
    CREATE UNIQUE INDEX credit_ledger_settled ON credit_ledger(task_id)
        WHERE kind IN ('charge', 'release');
    CREATE UNIQUE INDEX credit_ledger_purchase ON credit_ledger(charge_id)
        WHERE kind = 'purchase';
    CREATE UNIQUE INDEX credit_ledger_refund ON credit_ledger(charge_id) WHERE kind = 'refund';
    """,
)
