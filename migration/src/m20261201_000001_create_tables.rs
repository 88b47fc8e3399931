//! The tables of the data model. Every tenant table carries `organization_id NOT NULL` with an
//! index that leads on it. No table has a password column: authentication is the identity
//! provider's.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const UP: &str = r#"
CREATE TABLE organizations (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    display_name            text,
    description             text,
    website                 text,
    logo_url                text,
    email                   text,
    is_active               boolean NOT NULL DEFAULT true,
    max_users               integer CHECK (max_users IS NULL OR max_users > 0),
    is_onboarding_complete  boolean NOT NULL DEFAULT false,
    owner_id                uuid,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    deleted_at              timestamptz
);

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    email            text NOT NULL UNIQUE,
    name             text,
    given_name       text,
    family_name      text,
    picture          text,
    is_active        boolean NOT NULL DEFAULT true,
    is_verified      boolean NOT NULL DEFAULT false,
    idp_subject      text UNIQUE,
    organization_id  uuid REFERENCES organizations (id),
    role             text CHECK (role IN ('owner', 'admin', 'member')),
    -- The organization a user was removed from (or left), which still sees the row.
    left_organization_id uuid REFERENCES organizations (id),
    last_login_at    timestamptz,
    settings         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- A member has a role; a user outside any organization has none.
    CONSTRAINT users_role_with_membership CHECK ((organization_id IS NULL) = (role IS NULL))
);
CREATE INDEX users_organization_idx ON users (organization_id, email);

ALTER TABLE organizations
    ADD CONSTRAINT organizations_owner_fk FOREIGN KEY (owner_id) REFERENCES users (id);

CREATE TABLE projects (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      text,
    icon             text,
    is_active        boolean NOT NULL DEFAULT true,
    owner_id         uuid,
    created_by       uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    deleted_at       timestamptz,
    -- Children reference a project of their own organization only: the composite key makes
    -- a cross-tenant reference impossible even for code that forgets to check.
    UNIQUE (id, organization_id),
    FOREIGN KEY (owner_id) REFERENCES users (id),
    FOREIGN KEY (created_by) REFERENCES users (id)
);
CREATE INDEX projects_organization_idx ON projects (organization_id, created_at);

CREATE TABLE endpoints (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    project_id             uuid,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description            text,
    url                    text NOT NULL,
    method                 text NOT NULL DEFAULT 'POST',
    protocol               text NOT NULL DEFAULT 'REST',
    request_headers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_mapping        jsonb,
    response_mapping       jsonb,
    auth_type              text NOT NULL DEFAULT 'none',
    client_id              text,
    token_url              text,
    scopes                 text[] NOT NULL DEFAULT '{}',
    audience               text,
    -- The three secret columns hold sealed Fernet tokens, never plaintext.
    auth_token             text,
    client_secret          text,
    last_token             text,
    auth_token_hint        text,
    client_secret_hint     text,
    last_token_hint        text,
    last_token_expires_at  timestamptz,
    created_by             uuid REFERENCES users (id),
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    deleted_at             timestamptz,
    FOREIGN KEY (project_id, organization_id) REFERENCES projects (id, organization_id)
);
CREATE INDEX endpoints_organization_idx ON endpoints (organization_id, created_at);

CREATE TABLE models (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      text,
    model_name       text NOT NULL,
    provider         text NOT NULL,
    endpoint         text,
    request_headers  jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Sealed Fernet token, never plaintext.
    key              text,
    key_hint         text,
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    deleted_at       timestamptz
);
CREATE INDEX models_organization_idx ON models (organization_id, created_at);

CREATE TABLE api_tokens (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    user_id            uuid NOT NULL,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Sealed Fernet token of the value; the digest is what lookups use.
    token              text NOT NULL,
    token_digest       bytea NOT NULL UNIQUE CHECK (length(token_digest) = 32),
    token_hint         text NOT NULL,
    expires_at         timestamptz,
    last_used_at       timestamptz,
    last_refreshed_at  timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    deleted_at         timestamptz,
    FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX api_tokens_organization_idx ON api_tokens (organization_id, user_id);

-- Browser sessions. The primary key is a hash of the cookie's random id, never the id itself.
CREATE TABLE sessions (
    id_hash        bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data           jsonb NOT NULL DEFAULT '{}'::jsonb,
    auth_time      timestamptz,
    created_at     timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

-- The organization's tamper-evident log: each event carries the hash of the one before it.
CREATE TABLE audit_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    seq              bigint NOT NULL CHECK (seq > 0),
    occurred_at      timestamptz NOT NULL,
    actor_user_id    uuid,
    action           text NOT NULL,
    target_type      text,
    target_id        text,
    outcome          text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    client_ip        inet,
    request_id       text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash        bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash             bytea NOT NULL CHECK (length(hash) = 32),
    UNIQUE (organization_id, seq)
);

-- Rate-limit strikes and blocks of the graduated response. Keys are client addresses or
-- principals, not tenant data; the table is shared by every replica.
CREATE TABLE client_blocks (
    key              text PRIMARY KEY,
    strikes          integer NOT NULL DEFAULT 0,
    window_started_at timestamptz NOT NULL,
    block_count      integer NOT NULL DEFAULT 0,
    blocked_until    timestamptz,
    permanent        boolean NOT NULL DEFAULT false,
    reason           text,
    updated_at       timestamptz NOT NULL
);
"#;

const DOWN: &str = r#"
DROP TABLE client_blocks;
DROP TABLE audit_events;
DROP TABLE sessions;
DROP TABLE api_tokens;
DROP TABLE models;
DROP TABLE endpoints;
DROP TABLE projects;
ALTER TABLE organizations DROP CONSTRAINT organizations_owner_fk;
DROP TABLE users;
DROP TABLE organizations;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}
