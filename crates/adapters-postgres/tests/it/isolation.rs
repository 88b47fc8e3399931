//! One organization's unit of work never reaches another's rows, through the repositories or
//! through raw SQL inside its transaction.

use domain::{Email, Name, Role};
use ports::{
    FoundingError, NewOrganization, OrganizationPatch, OrganizationSort, PageRequest, Patch,
    ProjectPatch, ProjectSort, Sort, SortDirection, StoreError, UnitOfWorkFactory, UserSort,
};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::{count, fails, texts, world};

fn page<F: Copy>(field: F) -> PageRequest<F> {
    PageRequest::new(
        0,
        100,
        Sort {
            field,
            direction: SortDirection::Ascending,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn repositories_never_reach_another_organization() {
    let w = world().await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();

    let projects = uow.projects().list(page(ProjectSort::Name)).await.unwrap();
    assert_eq!(projects.total, 1);
    assert_eq!(projects.items[0].id, w.a.project);
    assert!(matches!(
        uow.projects().get(w.b.project).await,
        Err(StoreError::NotFound)
    ));
    let rename = ProjectPatch {
        name: Patch::Set(Name::new("stolen").unwrap()),
        ..Default::default()
    };
    assert!(matches!(
        uow.projects().update(w.b.project, rename).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.projects().soft_delete(w.b.project).await,
        Err(StoreError::NotFound)
    ));

    let b_owner = w.b.principal.user_id();
    assert!(matches!(
        uow.users().get(b_owner).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.users().set_role(b_owner, Role::Member).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.users().remove(b_owner).await,
        Err(StoreError::NotFound)
    ));
    let users = uow.users().list(page(UserSort::Email)).await.unwrap();
    assert_eq!(users.total, 1);
    assert_eq!(users.items[0].id, w.a.principal.user_id());

    // A project cannot be handed to a user of another organization.
    let hand_over = ProjectPatch {
        owner_id: Patch::Set(Some(b_owner)),
        ..Default::default()
    };
    assert!(matches!(
        uow.projects().update(w.a.project, hand_over).await,
        Err(StoreError::MissingReference { what: "user" })
    ));

    let orgs = uow
        .organizations()
        .list(page(OrganizationSort::Name))
        .await
        .unwrap();
    assert_eq!(orgs.total, 1);
    assert_eq!(orgs.items[0].id, w.a.org);
    uow.commit().await.unwrap();

    // B is untouched.
    let uow = w.store.begin(&w.b.scope()).await.unwrap();
    let project = uow.projects().get(w.b.project).await.unwrap();
    assert_eq!(project.name.as_str(), "Project of b");
    assert_eq!(
        uow.users()
            .get(b_owner)
            .await
            .unwrap()
            .membership
            .unwrap()
            .role,
        Role::Owner
    );
}

/// Raw SQL inside a transaction whose tenant is A: the policies alone stop it.
#[tokio::test]
async fn the_database_rejects_rows_outside_the_tenant() {
    let w = world().await;
    let app = w.db.app_pool(1).await;
    let (a, b) = (w.a.org, w.b.org);
    let (a_user, b_project) = (w.a.principal.user_id(), w.b.project);

    let txn = app.begin().await.unwrap();
    txn.execute_unprepared(&format!(
        "SELECT set_config('app.current_organization', '{a}', true),
                set_config('app.current_user', '{a_user}', true)"
    ))
    .await
    .unwrap();
    assert_eq!(count(&txn, "SELECT count(*) FROM projects").await, 1);
    assert_eq!(count(&txn, "SELECT count(*) FROM organizations").await, 1);
    // No WHERE on the organization: only the policy keeps B's rows out.
    let updated = txn
        .execute_unprepared(&format!(
            "UPDATE projects SET name = 'stolen' WHERE id = '{b_project}'"
        ))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let updated = txn
        .execute_unprepared(&format!(
            "UPDATE organizations SET name = 'stolen' WHERE id = '{b}'"
        ))
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    txn.commit().await.unwrap();

    for sql in [
        // Inserting into B from A's context.
        format!(
            "INSERT INTO projects (id, organization_id, name, created_at, updated_at)
             VALUES (gen_random_uuid(), '{b}', 'planted', now(), now())"
        ),
        // Moving A's row into B.
        format!("UPDATE projects SET organization_id = '{b}'"),
        // Moving a user of A into B.
        format!("UPDATE users SET organization_id = '{b}' WHERE id = '{a_user}'"),
        // Creating a user inside B.
        format!(
            "INSERT INTO users (id, email, organization_id, role, created_at, updated_at)
             VALUES (gen_random_uuid(), 'mole@b.example', '{b}', 'owner', now(), now())"
        ),
    ] {
        let txn = app.begin().await.unwrap();
        txn.execute_unprepared(&format!(
            "SELECT set_config('app.current_organization', '{a}', true),
                    set_config('app.current_user', '{a_user}', true)"
        ))
        .await
        .unwrap();
        let error = fails(&txn, &sql).await;
        // The policies refuse it, or (a user moved into B) the membership trigger first.
        assert!(
            error.contains("row-level security") || error.contains("only by accepting"),
            "{sql}: {error}"
        );
        txn.rollback().await.unwrap();
    }

    let admin = w.db.admin_pool().await;
    assert_eq!(
        texts(
            &admin,
            &format!("SELECT name FROM projects WHERE organization_id = '{b}'")
        )
        .await,
        vec![Some("Project of b".to_owned())]
    );
    assert_eq!(
        count(
            &admin,
            &format!("SELECT count(*) FROM users WHERE organization_id = '{b}'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn repositories_do_their_work_inside_the_tenant() {
    let w = world().await;
    let invited = crate::joined(&w.store, &w.a, "new.member@a.example", Role::Member).await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let member = uow.users().get(invited).await.unwrap();
    assert_eq!(member.membership.unwrap().organization_id, w.a.org);
    drop(uow);

    // A failed statement aborts the unit of work: its commit fails and keeps nothing.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let doomed = Email::new("doomed@a.example").unwrap();
    uow.invitations()
        .create(doomed.clone(), Role::Member)
        .await
        .unwrap();
    assert!(matches!(
        uow.invitations().create(doomed, Role::Admin).await,
        Err(StoreError::Duplicate {
            what: "invitations.email"
        })
    ));
    assert!(
        uow.commit().await.is_err(),
        "an aborted unit of work must not report a commit"
    );
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    let pending = uow
        .invitations()
        .list(page(ports::InvitationSort::Email))
        .await
        .unwrap();
    assert_eq!(pending.total, 0, "the aborted invitation was not kept");
    // A member's address is not invited again.
    assert!(matches!(
        uow.invitations()
            .create(Email::new("new.member@a.example").unwrap(), Role::Admin)
            .await,
        Err(StoreError::Duplicate {
            what: "users.email"
        })
    ));
    drop(uow);

    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    assert_eq!(uow.users().count_owners().await.unwrap(), 1);
    let promoted = uow.users().set_role(invited, Role::Owner).await.unwrap();
    assert_eq!(promoted.membership.unwrap().role, Role::Owner);
    assert_eq!(uow.users().count_owners().await.unwrap(), 2);
    uow.users().remove(invited).await.unwrap();
    assert!(matches!(
        uow.users().get(invited).await,
        Err(StoreError::NotFound)
    ));

    let patch = OrganizationPatch {
        display_name: Patch::Set(Some(Name::new("A, Inc.").unwrap())),
        is_onboarding_complete: Patch::Set(true),
        ..Default::default()
    };
    let org = uow.organizations().update(patch).await.unwrap();
    assert_eq!(org.display_name.unwrap().as_str(), "A, Inc.");
    assert!(org.is_onboarding_complete);

    let second = uow
        .projects()
        .create(ports::NewProject {
            name: Name::new("Second").unwrap(),
            description: None,
            icon: None,
        })
        .await
        .unwrap();
    let sorted = PageRequest::new(
        0,
        1,
        Sort {
            field: ProjectSort::Name,
            direction: SortDirection::Descending,
        },
    )
    .unwrap();
    let first_page = uow.projects().list(sorted).await.unwrap();
    assert_eq!(first_page.total, 2, "the total counts the whole list");
    assert_eq!(first_page.items.len(), 1, "the page is limited");
    assert_eq!(
        first_page.items[0].id, second.id,
        "'Second' > 'Project of a'"
    );
    uow.projects().soft_delete(second.id).await.unwrap();
    assert!(matches!(
        uow.projects().get(second.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        uow.projects().soft_delete(second.id).await,
        Err(StoreError::NotFound)
    ));
    uow.commit().await.unwrap();

    // The removed user's row is visible to the organization it left, and to no other.
    let app = w.db.app_pool(1).await;
    for (tenant, expected) in [(&w.a, 1), (&w.b, 0)] {
        let txn = app.begin().await.unwrap();
        txn.execute_unprepared(&format!(
            "SELECT set_config('app.current_organization', '{}', true)",
            tenant.org
        ))
        .await
        .unwrap();
        let sql = format!(
            "SELECT count(*) FROM users WHERE id = '{}' AND organization_id IS NULL",
            invited
        );
        assert_eq!(count(&txn, &sql).await, expected);
        txn.rollback().await.unwrap();
    }

    // Founding a second organization is refused to a member.
    let again = w
        .store
        .found_organization(
            w.a.principal.user_id(),
            NewOrganization::named(Name::new("Another").unwrap()),
            ports::NewAuditEvent::by(None, domain::AuditAction::OrganizationCreated),
        )
        .await;
    assert!(matches!(again, Err(FoundingError::AlreadyMember)));

    // A deleted organization disappears from its own scope.
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.organizations().soft_delete().await.unwrap();
    assert!(matches!(
        uow.organizations().current().await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn an_uncommitted_unit_of_work_leaves_nothing() {
    let w = world().await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.projects()
        .create(ports::NewProject {
            name: Name::new("Ghost").unwrap(),
            description: None,
            icon: None,
        })
        .await
        .unwrap();
    drop(uow);
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    assert_eq!(
        uow.projects()
            .list(page(ProjectSort::Name))
            .await
            .unwrap()
            .total,
        1
    );
}

/// A user invited into the first organization of `w` and removed from it again.
async fn invited_and_removed(w: &crate::World, email: &str) -> domain::UserId {
    let departed = crate::joined(&w.store, &w.a, email, Role::Member).await;
    let uow = w.store.begin(&w.a.scope()).await.unwrap();
    uow.users().remove(departed).await.unwrap();
    uow.commit().await.unwrap();
    departed
}

/// A transaction of the application role whose context names `org` and `user`, as raw SQL
/// could set it.
async fn in_context(
    app: &sea_orm::DatabaseConnection,
    org: &str,
    user: &str,
) -> sea_orm::DatabaseTransaction {
    let txn = app.begin().await.unwrap();
    txn.execute_unprepared(&format!(
        "SELECT set_config('app.current_organization', '{org}', true),
                set_config('app.current_user', '{user}', true)"
    ))
    .await
    .unwrap();
    txn
}

/// Raw SQL as the application role in the former organization's context: the row of a user
/// who was removed stays readable, but nothing of it can be changed any more (their identity
/// at the provider, their address), while the user still may change their own row.
#[tokio::test]
async fn a_former_organization_reads_but_never_changes_a_departed_user() {
    let w = world().await;
    let departed = invited_and_removed(&w, "departed@a.example").await;
    let app = w.db.app_pool(1).await;
    let (a, a_user) = (w.a.org, w.a.principal.user_id());
    let txn = in_context(&app, &a.to_string(), &a_user.to_string()).await;
    assert_eq!(
        count(
            &txn,
            &format!("SELECT count(*) FROM users WHERE id = '{departed}'")
        )
        .await,
        1,
        "still readable"
    );
    let renamed = txn
        .execute_unprepared(&format!(
            "UPDATE users SET name = 'Renamed' WHERE id = '{departed}'"
        ))
        .await
        .unwrap();
    assert_eq!(
        renamed.rows_affected(),
        0,
        "a departed user is not theirs to change"
    );
    // Who a user is cannot be written by the application role at all.
    let takeover = crate::fails(
        &txn,
        &format!(
            "UPDATE users SET idp_subject = 'attacker|1', email = 'attacker@evil.example', \
             is_verified = true WHERE id = '{departed}'"
        ),
    )
    .await;
    assert!(takeover.contains("permission denied"), "{takeover}");
    txn.rollback().await.unwrap();

    // The user, in no organization, still changes their own row.
    let txn = in_context(&app, "", &departed.to_string()).await;
    let own = txn
        .execute_unprepared(&format!(
            "UPDATE users SET name = 'Me' WHERE id = '{departed}'"
        ))
        .await
        .unwrap();
    assert_eq!(own.rows_affected(), 1);
    txn.commit().await.unwrap();

    let admin = w.db.admin_pool().await;
    assert_eq!(
        texts(
            &admin,
            &format!("SELECT email FROM users WHERE id = '{departed}'")
        )
        .await,
        vec![Some("departed@a.example".to_owned())]
    );
}

/// The same attack as above, not after the removal but in it: the organization's own
/// removal of a member (or a change while they are still one) writes their identity at the
/// provider and their address too, and the departed row is the attacker's. And the context's
/// user is only what the caller wrote: naming the departed user opens their row again.
#[tokio::test]
async fn a_departed_users_identity_cannot_be_rewritten_in_the_removal_or_by_naming_them() {
    let w = world().await;
    let member = crate::joined(&w.store, &w.a, "member@a.example", Role::Member).await;
    let departed = invited_and_removed(&w, "departed@a.example").await;
    let app = w.db.app_pool(1).await;
    let (a, a_user) = (w.a.org, w.a.principal.user_id());
    let mut written = Vec::new();
    for (user, sql) in [
        (
            a_user.to_string(),
            format!(
                "UPDATE users SET organization_id = NULL, role = NULL, \
                 left_organization_id = '{a}', idp_subject = 'attacker|1', \
                 email = 'attacker1@evil.example', is_verified = true WHERE id = '{member}'"
            ),
        ),
        (
            departed.to_string(),
            format!(
                "UPDATE users SET idp_subject = 'attacker|2', \
                 email = 'attacker2@evil.example', is_verified = true WHERE id = '{departed}'"
            ),
        ),
    ] {
        let txn = in_context(&app, &a.to_string(), &user).await;
        if let Ok(done) = txn.execute_unprepared(&sql).await
            && done.rows_affected() > 0
        {
            written.push(sql);
        }
        txn.commit().await.unwrap();
    }
    let admin = w.db.admin_pool().await;
    let subjects = texts(
        &admin,
        &format!(
            "SELECT idp_subject FROM users WHERE id IN ('{member}', '{departed}') \
             AND organization_id IS NULL ORDER BY idp_subject"
        ),
    )
    .await;
    assert!(
        written.is_empty(),
        "departed users now signed in by the attacker: {subjects:?}; through {written:#?}"
    );
}

/// A person signed in with a verified address `{label}@evil.example`, in no organization.
async fn outsider(w: &crate::World, label: &str) -> domain::UserId {
    ports::IdentityDirectory::unscoped_sign_in(
        &w.store,
        ports::NewIdentity {
            subject: format!("idp|{label}"),
            email: Email::new(&format!("{label}@evil.example")).unwrap(),
            email_verified: true,
            name: None,
        },
    )
    .await
    .unwrap()
    .user_id
}

/// Raw SQL as the application role, with a context it chose: a user outside any organization
/// writes themselves into one, a member of another organization moves themselves over, and a
/// user row is planted straight into it. The database refuses each: the one way into an
/// organization that has members is the owner's function that accepts an invitation.
#[tokio::test]
async fn nobody_enters_an_organization_but_by_accepting_an_invitation() {
    let w = world().await;
    let lone = outsider(&w, "lone").await;
    let app = w.db.app_pool(1).await;
    let a = w.a.org;
    let b_owner = w.b.principal.user_id();
    for (user, sql) in [
        (
            lone.to_string(),
            format!("UPDATE users SET organization_id = '{a}', role = 'owner' WHERE id = '{lone}'"),
        ),
        (
            b_owner.to_string(),
            format!(
                "UPDATE users SET organization_id = '{a}', role = 'owner' WHERE id = '{b_owner}'"
            ),
        ),
        (
            lone.to_string(),
            format!(
                "INSERT INTO users (id, email, is_active, is_verified, organization_id, role, \
                 settings, created_at, updated_at) VALUES (gen_random_uuid(), \
                 'planted@evil.example', true, false, '{a}', 'owner', '{{}}', now(), now())"
            ),
        ),
    ] {
        let txn = in_context(&app, &a.to_string(), &user).await;
        let refused = fails(&txn, &sql).await;
        assert!(
            refused.contains("only by accepting") || refused.contains("row-level security"),
            "{sql}: {refused}"
        );
        txn.rollback().await.unwrap();
    }
    let admin = w.db.admin_pool().await;
    assert_eq!(
        count(
            &admin,
            &format!("SELECT count(*) FROM users WHERE organization_id = '{a}'")
        )
        .await,
        1,
        "only A's owner"
    );
}

/// The attack: one UPDATE that touches two rows, B's owner (unchanged) and an outsider, whose
/// SET list empties `app.current_organization` before the outsider's row is checked. The
/// policies read the setting once per statement, so their check still says B; a trigger that
/// looked for B's members through the writer's own policies would see none and take it for
/// founding. The question is the owner's function's, which no setting of the writer moves.
#[tokio::test]
async fn a_context_changed_in_the_middle_of_a_statement_opens_no_organization() {
    let w = world().await;
    let evil = outsider(&w, "mid-statement").await;
    let app = w.db.app_pool(1).await;
    let (b, b_owner) = (w.b.org, w.b.principal.user_id());
    let txn = in_context(&app, &b.to_string(), &evil.to_string()).await;
    let refused = fails(
        &txn,
        &format!(
            "UPDATE users AS u SET organization_id = '{b}', \
               role = CASE WHEN u.id = '{evil}' THEN 'owner' ELSE u.role END, \
               name = CASE WHEN u.id = '{evil}' \
                      THEN set_config('app.current_organization', '', true) ELSE u.name END \
             WHERE u.id IN ('{b_owner}', '{evil}')"
        ),
    )
    .await;
    assert!(refused.contains("only by accepting"), "{refused}");
    txn.rollback().await.unwrap();
}

/// The attack: in B's context, take every member out of B (an ordinary removal), then write
/// oneself in: B has no member, which looked like founding. An organization is new only
/// while its audit log is empty too, and the application role cannot delete from the log.
#[tokio::test]
async fn an_emptied_organization_is_not_founded_again() {
    let w = world().await;
    let evil = outsider(&w, "emptier").await;
    let app = w.db.app_pool(1).await;
    let b = w.b.org;
    let txn = in_context(&app, &b.to_string(), &evil.to_string()).await;
    txn.execute_unprepared(&format!(
        "UPDATE users SET organization_id = NULL, role = NULL, left_organization_id = '{b}' \
         WHERE organization_id = '{b}'"
    ))
    .await
    .unwrap();
    let refused = fails(
        &txn,
        &format!("UPDATE users SET organization_id = '{b}', role = 'owner' WHERE id = '{evil}'"),
    )
    .await;
    assert!(refused.contains("only by accepting"), "{refused}");
    txn.rollback().await.unwrap();
}

/// The attack (found by review): two transactions of the application role each write a
/// different user into one organization that has no member yet. Both saw it empty, and both
/// committed: two founders, neither by invitation. Writers into one organization now take
/// turns, and the second sees the first's member.
#[tokio::test]
async fn two_writers_cannot_both_found_one_organization() {
    let w = world().await;
    let (first, second) = (
        outsider(&w, "racer-one").await,
        outsider(&w, "racer-two").await,
    );
    let app = w.db.app_pool(2).await;
    let org = uuid::Uuid::now_v7();
    let setup = in_context(&app, &org.to_string(), &first.to_string()).await;
    setup
        .execute_unprepared(&format!(
            "INSERT INTO organizations (id, name, created_at, updated_at) \
             VALUES ('{org}', 'Raced', now(), now())"
        ))
        .await
        .unwrap();
    setup.commit().await.unwrap();
    let join = |user: domain::UserId| {
        format!("UPDATE users SET organization_id = '{org}', role = 'owner' WHERE id = '{user}'")
    };
    let one = in_context(&app, &org.to_string(), &first.to_string()).await;
    one.execute_unprepared(&join(first)).await.unwrap();
    // The second waits for the first's turn; the first commits meanwhile.
    let two = in_context(&app, &org.to_string(), &second.to_string()).await;
    let second_join = join(second);
    let racing = tokio::spawn(async move {
        let outcome = two.execute_unprepared(&second_join).await;
        match outcome {
            Ok(_) => two.commit().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    one.commit().await.unwrap();
    let refused = racing.await.unwrap().unwrap_err();
    assert!(refused.contains("only by accepting"), "{refused}");
    assert_eq!(
        count(
            &w.db.admin_pool().await,
            &format!("SELECT count(*) FROM users WHERE organization_id = '{org}'")
        )
        .await,
        1
    );
}
