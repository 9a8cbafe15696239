-- A database as the previous release (schema 2) left it: one request, two events of one message.
CREATE TABLE raw_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    received_at TEXT NOT NULL,
    content_type TEXT,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    ignored TEXT NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    status TEXT NOT NULL,
    date TEXT NOT NULL,
    event TEXT NOT NULL,
    request_seq INTEGER NOT NULL REFERENCES raw_requests(seq),
    received_at TEXT NOT NULL,
    duplicates INTEGER NOT NULL DEFAULT 0,
    UNIQUE (environment_id, dedup_key)
);
CREATE INDEX events_by_message ON events (environment_id, message_id, seq);
CREATE TABLE messages (
    environment_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    events INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (environment_id, message_id)
);
CREATE TABLE idempotency (
    environment_id TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash BLOB NOT NULL,
    status INTEGER NOT NULL,
    response BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (environment_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
INSERT INTO raw_requests VALUES (1, 'env', 'sendgrid', 'sendgrid', '2023-11-14T22:13:30.000000Z',
    'application/json', '{}', X'5B5D', '[]');
INSERT INTO events VALUES (1, 'env', 'sendgrid', 'sendgrid', 'm1', 'test:a', 'sent',
    '2023-11-14T22:13:20.000000Z', '{"id": "m1", "body": {"status": "sent", "date": "2023-11-14T22:13:20.000Z", "externalId": "ext-m1"}, "dedupKey": "test:a", "providerEvent": "sent", "recipient": "someone@example.com"}', 1, '2023-11-14T22:13:30.000000Z', 0);
INSERT INTO events VALUES (2, 'env', 'sendgrid', 'sendgrid', 'm1', 'test:b', 'delivered',
    '2023-11-14T22:13:21.000000Z', '{"id": "m1", "body": {"status": "delivered", "date": "2023-11-14T22:13:21.000Z", "externalId": "ext-m1"}, "dedupKey": "test:b", "providerEvent": "delivered", "recipient": "someone@example.com"}', 1, '2023-11-14T22:13:30.000000Z', 0);
INSERT INTO messages VALUES ('env', 'm1', 'sendgrid', 'delivered', '{"status": "delivered", "statusAt": "2023-11-14T22:13:21Z", "firstAt": {"sent": "2023-11-14T22:13:20Z", "delivered": "2023-11-14T22:13:21Z"}}', 2,
    '2023-11-14T22:13:30.000000Z');
INSERT INTO idempotency VALUES ('env', 'k', X'00', 200, X'5B5D', '2023-11-14T22:13:30.000000Z');
PRAGMA user_version = 2;
