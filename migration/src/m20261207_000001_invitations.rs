//! Invitations live per organization, and a person joins only by accepting one.
//!
//! Until now an invitation was a user row with a globally unique e-mail and no subject: an
//! organization that invited an address another organization already held got 409 (an oracle
//! of who exists elsewhere), an unverified first sign-in squatted an address, and a verified
//! first login joined the inviting organization without being asked. Now:
//! - `invitations (organization_id, email)` is a tenant table; inviting an address never
//!   looks outside the organization.
//! - A user is the provider's subject; only a verified address is unique among users.
//! - `app_sign_in` links a login to its user by subject (registering a newcomer, following
//!   the provider's address and its verification); it claims nothing.
//! - `app_my_invitations`, `app_accept_invitation`, `app_decline_invitation` answer only for
//!   the pending invitations of the caller's own verified address, and only while the
//!   inviter still may hand out the role (an owner for an owner, else an admin or owner, still
//!   in the organization): an insider who is demoted or removed cannot come back through an
//!   invitation they sent themselves beforehand.
//! - A trigger refuses any write of the application role that puts a user into an
//!   organization, unless the organization is being founded (no other member, no audit event
//!   yet, asked of the owner's function under the organization's lock); the owner's accepting
//!   function is the other way in.
//! - A login without a usable address keeps the stored one, no longer verified
//!   (`app_sign_in_unaddressed`).
//!
//! Existing invited rows are carried over into `invitations` (14 days to answer, the inviter
//! from the `user.invited` audit event) and leave `users`; a row something else refers to
//! stays as a departed user of its organization.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const ORG: &str = "(SELECT NULLIF(current_setting('app.current_organization', true), '')::uuid)";
const USER: &str = "(SELECT NULLIF(current_setting('app.current_user', true), '')::uuid)";

fn up_sql() -> String {
    format!(
        r#"
CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role             text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    invited_by       uuid REFERENCES users (id),
    -- The database's time, as every function that reads them compares with its own.
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at       timestamptz NOT NULL DEFAULT pg_catalog.now() + interval '14 days',
    CONSTRAINT invitations_once_per_organization UNIQUE (organization_id, email)
);
CREATE INDEX invitations_email_idx ON invitations (email);

-- The rows invited the old way (a user row without a subject) become invitations. The owner
-- reads and writes them past the policies for this once (FORCEd again below).
ALTER TABLE users NO FORCE ROW LEVEL SECURITY;
INSERT INTO invitations (id, organization_id, email, role, invited_by, created_at, expires_at)
SELECT u.id, u.organization_id, u.email, u.role, NULL, u.created_at,
       pg_catalog.now() + interval '14 days'
FROM users AS u
WHERE u.idp_subject IS NULL AND u.organization_id IS NOT NULL;
-- Who invited them is in the organization's audit log (`user.invited`, the row as target):
-- an invitation is backed only by its inviter's standing (see `app_invitation_backed`).
ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY;
UPDATE invitations AS i
SET invited_by = (
    SELECT a.actor_user_id FROM audit_events AS a
    WHERE a.organization_id = i.organization_id AND a.action = 'user.invited'
      AND a.target_id = i.id::text AND a.actor_user_id IS NOT NULL
    ORDER BY a.seq DESC LIMIT 1
);
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
UPDATE users
SET left_organization_id = organization_id, organization_id = NULL, role = NULL
WHERE idp_subject IS NULL AND organization_id IS NOT NULL;
DO $do$
DECLARE placeholder uuid;
BEGIN
    FOR placeholder IN SELECT id FROM users WHERE idp_subject IS NULL AND organization_id IS NULL
    LOOP
        BEGIN
            DELETE FROM users WHERE id = placeholder;
        EXCEPTION WHEN foreign_key_violation THEN
            -- Something refers to it: it stays, as a departed user its organization still reads.
            NULL;
        END;
    END LOOP;
END
$do$;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

-- Identity is the provider's subject; only a verified address is unique.
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_verified_email_key ON users (email) WHERE is_verified;

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
USING (organization_id = {ORG})
WITH CHECK (organization_id = {ORG});
-- The owner's functions below read and remove invitations of the caller's address only.
CREATE POLICY identity_resolution ON invitations FOR ALL TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on')
WITH CHECK (current_setting('app.identity_resolution', true) = 'on');
CREATE POLICY identity_register ON users FOR INSERT TO CURRENT_USER
WITH CHECK (current_setting('app.identity_resolution', true) = 'on');

-- Users are no longer put into an organization by an INSERT: registration is in none.
DROP POLICY tenant_insert ON users;
CREATE POLICY tenant_insert ON users FOR INSERT
WITH CHECK (organization_id IS NULL AND id = {USER});

-- Whether p_org is being founded by p_user: no other member, and nothing in its audit log
-- (founding records its first event after the founder joins).
CREATE FUNCTION app_organization_is_new(p_org uuid, p_user uuid)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE v_new boolean;
BEGIN
    -- Writers into one organization take turns (as acceptances do), and each looks only once
    -- the one before has committed or rolled back: two cannot both found it.
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('invitations:' || p_org::text, 0));
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    SELECT NOT EXISTS (SELECT 1 FROM public.users AS m
                       WHERE m.organization_id = p_org AND m.id <> p_user)
       AND NOT EXISTS (SELECT 1 FROM public.audit_events AS a WHERE a.organization_id = p_org)
    INTO v_new;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
    RETURN v_new;
END
$$;
CREATE POLICY identity_resolution ON audit_events FOR SELECT TO CURRENT_USER
USING (current_setting('app.identity_resolution', true) = 'on');

CREATE FUNCTION app_membership_by_acceptance()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Runs as the writer: the owner inside its functions (accepting an invitation), else the
    -- application role, which may only found an organization: one that has neither another
    -- member nor any audit event yet (an emptied organization still has its log). Whether it
    -- is new is asked of the owner's function, so nothing the writer sets (its context, even
    -- in the middle of the statement) changes the answer.
    IF NEW.organization_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.organization_id IS DISTINCT FROM OLD.organization_id)
       AND current_user <> (SELECT r.rolname FROM pg_catalog.pg_class AS c
                            JOIN pg_catalog.pg_roles AS r ON r.oid = c.relowner
                            WHERE c.oid = 'public.users'::pg_catalog.regclass)
       AND NOT public.app_organization_is_new(NEW.organization_id, NEW.id)
    THEN
        RAISE EXCEPTION 'a user joins an organization only by accepting its invitation'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER users_join_by_acceptance BEFORE INSERT OR UPDATE OF organization_id ON users
FOR EACH ROW EXECUTE FUNCTION app_membership_by_acceptance();

-- Whether an invitation is still backed by its inviter: an owner for an owner's invitation,
-- an admin or owner for any other, still active in the organization. An inviter who was
-- demoted or removed hands out nothing afterwards, and one whose inviter is unknown hands out
-- nothing at all. Called from the owner's functions below.
CREATE FUNCTION app_invitation_backed(p_org uuid, p_role text, p_inviter uuid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_inviter IS NOT NULL AND EXISTS (
        SELECT 1 FROM public.users AS u
        WHERE u.id = p_inviter AND u.organization_id = p_org AND u.is_active
          AND (u.role = 'owner' OR (u.role = 'admin' AND p_role <> 'owner'))
    )
$$;

-- The user of the provider's subject, registered on a first login (id p_id), with the
-- provider's address and its verification as the provider says them now.
CREATE FUNCTION app_sign_in(p_id uuid, p_subject text, p_email text, p_verified boolean,
                            p_name text)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE v_id uuid;
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    UPDATE public.users AS u
    SET email = p_email, is_verified = p_verified, last_login_at = pg_catalog.now(),
        updated_at = pg_catalog.now()
    WHERE u.idp_subject = p_subject
    RETURNING u.id INTO v_id;
    IF v_id IS NULL THEN
        INSERT INTO public.users (id, email, name, is_active, is_verified, idp_subject,
                                  organization_id, role, last_login_at, settings, created_at,
                                  updated_at)
        VALUES (p_id, p_email, p_name, true, p_verified, p_subject, NULL, NULL,
                pg_catalog.now(), '{{}}'::jsonb, pg_catalog.now(), pg_catalog.now());
        v_id := p_id;
    END IF;
    RETURN QUERY
        SELECT u.id, u.organization_id, u.role, u.is_active FROM public.users AS u
        WHERE u.id = v_id;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

-- The user of the provider's subject, signing in with no address the server can use: known
-- as before, but their stored address is no longer one the provider vouches for.
CREATE FUNCTION app_sign_in_unaddressed(p_subject text)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        UPDATE public.users AS u
        SET is_verified = false, last_login_at = pg_catalog.now(), updated_at = pg_catalog.now()
        WHERE u.idp_subject = p_subject
        RETURNING u.id, u.organization_id, u.role, u.is_active;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

-- The pending invitations addressed to p_user's address, if it is verified.
CREATE FUNCTION app_my_invitations(p_user uuid)
RETURNS TABLE (invitation_id uuid, organization_id uuid, organization_name text, role text,
               created_at timestamptz, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT i.id, i.organization_id, o.name, i.role, i.created_at, i.expires_at
        FROM public.invitations AS i
        JOIN public.users AS u ON u.id = p_user AND u.is_verified AND u.email = i.email
        JOIN public.organizations AS o ON o.id = i.organization_id AND o.deleted_at IS NULL
        WHERE i.expires_at > pg_catalog.now()
          AND public.app_invitation_backed(i.organization_id, i.role, i.invited_by)
        ORDER BY i.created_at, i.id;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

-- p_user accepts the invitation p_invitation addressed to their verified address. outcome:
-- joined (organization_id and role set), not_found, already_member or full.
CREATE FUNCTION app_accept_invitation(p_user uuid, p_invitation uuid)
RETURNS TABLE (organization_id uuid, role text, outcome text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user public.users%ROWTYPE;
    v_inv public.invitations%ROWTYPE;
    v_cap integer;
    v_members bigint;
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    SELECT * INTO v_user FROM public.users AS u WHERE u.id = p_user FOR UPDATE;
    SELECT i.* INTO v_inv FROM public.invitations AS i
    JOIN public.organizations AS o ON o.id = i.organization_id AND o.deleted_at IS NULL
    WHERE i.id = p_invitation AND i.email = v_user.email AND v_user.is_verified
      AND v_user.is_active AND i.expires_at > pg_catalog.now()
      AND public.app_invitation_backed(i.organization_id, i.role, i.invited_by)
    FOR UPDATE OF i;
    IF v_inv.id IS NULL THEN
        PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
        RETURN QUERY SELECT NULL::uuid, NULL::text, 'not_found'::text;
        RETURN;
    END IF;
    IF v_user.organization_id IS NOT NULL THEN
        PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
        RETURN QUERY SELECT v_inv.organization_id, NULL::text, 'already_member'::text;
        RETURN;
    END IF;
    -- Acceptances into one organization take turns, so its cap holds.
    PERFORM pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('invitations:' || v_inv.organization_id::text, 0));
    SELECT o.max_users INTO v_cap FROM public.organizations AS o
    WHERE o.id = v_inv.organization_id;
    SELECT pg_catalog.count(*) INTO v_members FROM public.users AS m
    WHERE m.organization_id = v_inv.organization_id;
    IF v_cap IS NOT NULL AND v_members >= v_cap THEN
        PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
        RETURN QUERY SELECT v_inv.organization_id, NULL::text, 'full'::text;
        RETURN;
    END IF;
    UPDATE public.users AS u
    SET organization_id = v_inv.organization_id, role = v_inv.role,
        left_organization_id = NULL, updated_at = pg_catalog.now()
    WHERE u.id = p_user;
    DELETE FROM public.invitations AS i WHERE i.id = v_inv.id;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
    RETURN QUERY SELECT v_inv.organization_id, v_inv.role, 'joined'::text;
END
$$;

-- p_user declines (removes) the invitation p_invitation addressed to their verified address.
CREATE FUNCTION app_decline_invitation(p_user uuid, p_invitation uuid)
RETURNS TABLE (organization_id uuid, role text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        DELETE FROM public.invitations AS i
        USING public.users AS u
        WHERE i.id = p_invitation AND u.id = p_user AND u.is_verified AND u.email = i.email
        RETURNING i.organization_id, i.role;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;

REVOKE ALL ON FUNCTION app_membership_by_acceptance() FROM PUBLIC;
REVOKE ALL ON FUNCTION app_organization_is_new(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_sign_in_unaddressed(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_invitation_backed(uuid, text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_sign_in(uuid, text, text, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_my_invitations(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_accept_invitation(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_decline_invitation(uuid, uuid) FROM PUBLIC;
DROP FUNCTION app_claim_invitation(text, text, timestamptz);
DROP FUNCTION app_pending_invitation(text);
"#
    )
}

fn down_sql() -> String {
    format!(
        r#"
DROP FUNCTION app_decline_invitation(uuid, uuid);
DROP FUNCTION app_accept_invitation(uuid, uuid);
DROP FUNCTION app_my_invitations(uuid);
DROP FUNCTION app_sign_in_unaddressed(text);
DROP FUNCTION app_sign_in(uuid, text, text, boolean, text);
DROP FUNCTION app_invitation_backed(uuid, text, uuid);
DROP TRIGGER users_join_by_acceptance ON users;
DROP FUNCTION app_membership_by_acceptance();
DROP FUNCTION app_organization_is_new(uuid, uuid);
DROP POLICY identity_resolution ON audit_events;
DROP POLICY tenant_insert ON users;
CREATE POLICY tenant_insert ON users FOR INSERT
WITH CHECK (
    organization_id = {ORG}
    OR (organization_id IS NULL AND id = {USER})
);
DROP POLICY identity_register ON users;
DROP INDEX users_verified_email_key;
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
DROP TABLE invitations;

CREATE FUNCTION app_pending_invitation(p_email text)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        SELECT u.id, u.organization_id, u.role, u.is_active
        FROM public.users AS u
        WHERE u.email = p_email
          AND u.idp_subject IS NULL
          AND u.organization_id IS NOT NULL;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;
CREATE FUNCTION app_claim_invitation(p_email text, p_subject text, p_now timestamptz)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, is_active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_catalog.set_config('app.identity_resolution', 'on', true);
    RETURN QUERY
        UPDATE public.users AS u
        SET idp_subject = p_subject, is_verified = true, last_login_at = p_now,
            updated_at = p_now
        WHERE u.email = p_email
          AND u.idp_subject IS NULL
          AND u.organization_id IS NOT NULL
        RETURNING u.id, u.organization_id, u.role, u.is_active;
    PERFORM pg_catalog.set_config('app.identity_resolution', '', true);
END
$$;
REVOKE ALL ON FUNCTION app_pending_invitation(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_claim_invitation(text, text, timestamptz) FROM PUBLIC;
"#
    )
}

/// The functions the application role may call.
const FUNCTIONS: [&str; 6] = [
    "app_organization_is_new(uuid, uuid)",
    "app_sign_in(uuid, text, text, boolean, text)",
    "app_sign_in_unaddressed(text)",
    "app_my_invitations(uuid)",
    "app_accept_invitation(uuid, uuid)",
    "app_decline_invitation(uuid, uuid)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &up_sql()).await?;
        let role = crate::app_role()?;
        crate::run_script(
            manager,
            &format!("GRANT SELECT, INSERT, DELETE ON invitations TO {role};"),
        )
        .await?;
        for function in FUNCTIONS {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, &down_sql()).await?;
        for function in [
            "app_pending_invitation(text)",
            "app_claim_invitation(text, text, timestamptz)",
        ] {
            crate::grant_execute_to_app(manager, function).await?;
        }
        Ok(())
    }
}
