-- After-hours emergencies (issue 5). Kept in step with the other dialect's 0003.

create table escalations (
    id              integer primary key autoincrement,
    device_id       integer not null references devices (id),
    facility_id     integer not null references facilities (id),
    -- who reported: the device's user themselves, their manager, or 行政管理課 taking a call
    channel         text    not null check (channel in ('self', 'manager', 'phone')),
    reported_by     integer references users (id),
    queue           text    not null check (queue in ('manager', 'admin_division')),
    status          text    not null check (status in ('open', 'claimed', 'resolved')),
    outcome         text    check (outcome in ('revoked', 'released', 'rejected')),
    note            text    not null default '',
    escalate_at     integer,
    claimed_by      integer references users (id),
    claimed_at      integer,
    resolved_by     integer references users (id),
    resolved_at     integer,
    resolution_note text,
    created_at      integer not null,
    updated_at      integer not null
);
create index escalations_status on escalations (status, queue);
create index escalations_facility on escalations (facility_id);

-- Sign-in attempts for the emergency report (the one password sign-in).
alter table users add column failed_logins integer not null default 0;
alter table users add column locked_until integer;
