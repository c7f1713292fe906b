-- connect-pki schema, SQLite dialect. Kept in step with ../postgres/0001_init.sql:
-- same tables, same columns, same meaning. Times are Unix seconds (UTC).

create table facilities (
    id          integer primary key autoincrement,
    name        text    not null,
    kind        text    not null check (kind in ('internal', 'external')),
    address     text    not null default '',
    department  text,
    status      text    not null check (status in ('approved', 'suspended', 'closed')),
    created_at  integer not null,
    updated_at  integer not null
);

create table users (
    id            integer primary key autoincrement,
    facility_id   integer not null references facilities (id),
    -- null once the user is deleted: personal data goes, the row (and audit trail) stays
    login_id      text unique,
    display_name  text,
    email         text,
    role          text    not null check (role in ('admin_division', 'welfare_division', 'facility_manager', 'staff')),
    status        text    not null check (status in ('invited', 'active', 'retired', 'deleted')),
    password_hash text,
    retire_at     integer,
    created_at    integer not null,
    updated_at    integer not null
);
create index users_facility on users (facility_id);

create table devices (
    id          integer primary key autoincrement,
    user_id     integer not null references users (id),
    label       text    not null default '',
    status      text    not null check (status in ('active', 'lost', 'retired')),
    created_at  integer not null,
    updated_at  integer not null
);
create index devices_user on devices (user_id);

create table certificates (
    serial            text    primary key,  -- lowercase hex, no colons
    device_id         integer not null references devices (id),
    der               blob    not null,
    not_before        integer not null,
    not_after         integer not null,
    status            text    not null check (status in ('valid', 'on_hold', 'revoked', 'superseded')),
    revocation_reason text,
    revoked_at        integer,
    created_at        integer not null,
    updated_at        integer not null,
    -- superseded (replaced by renewal) is published as revoked with reason superseded
    check ((status in ('revoked', 'on_hold', 'superseded')) = (revoked_at is not null)),
    check ((status in ('revoked', 'on_hold', 'superseded')) = (revocation_reason is not null))
);
create index certificates_device on certificates (device_id);
create index certificates_status on certificates (status);

-- Facility applications from the public form (DESIGN §3: applied → approved | rejected).
create table applications (
    id               integer primary key autoincrement,
    status_token     text    not null unique,  -- random; the public status URL carries it
    name             text    not null,
    kind             text    not null check (kind in ('internal', 'external')),
    address          text    not null,
    department       text,
    manager_name     text    not null,
    manager_login_id text    not null,
    manager_email    text    not null,
    manager_phone    text    not null,
    purpose_attested integer not null check (purpose_attested = 1),
    terms_version    text    not null,
    client_addr      text    not null,
    status           text    not null check (status in ('pending', 'approved', 'rejected')),
    decided_by       integer references users (id),
    decided_at       integer,
    decision_reason  text,
    facility_id      integer references facilities (id),
    created_at       integer not null,
    updated_at       integer not null
);
create index applications_status on applications (status);

create table enrollment_codes (
    id              integer primary key autoincrement,
    user_id         integer not null references users (id),
    code_hash       text    not null unique,  -- SHA-256 of the code; the code itself is shown once
    expires_at      integer not null,
    failed_attempts integer not null default 0,
    redeemed_at     integer,
    created_at      integer not null
);
create index enrollment_codes_user on enrollment_codes (user_id);

-- Append-only and hash-chained: each row's hash covers its fields and the
-- previous row's hash, so an edit or a deleted row breaks the chain.
create table audit_log (
    id          integer primary key autoincrement,
    at          integer not null,
    actor       text    not null,
    action      text    not null,
    target      text    not null,
    outcome     text    not null,
    detail      text    not null,
    facility_id integer,  -- for filtering; no foreign key, the trail outlives what it names
    user_id     integer,
    prev_hash   text    not null,
    hash        text    not null unique
);
create index audit_log_at on audit_log (at);
create index audit_log_facility on audit_log (facility_id);

create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;

create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only');
end;
