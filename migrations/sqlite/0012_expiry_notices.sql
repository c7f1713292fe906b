-- Expiry notices (issue 12): the thresholds each certificate (a device's, or
-- the root or issuing CA's) was announced at, written in the transaction
-- that queues the e-mails, so every threshold is announced once across
-- restarts and instances. Kept in step with the other dialect's 0012.
create table expiry_notices (
    serial         text    not null,  -- no foreign key: the CA certificates are not in `certificates`
    threshold_days integer not null,
    subject        text    not null check (subject in ('device', 'root', 'issuing')),
    not_after      integer not null,
    sent_at        integer not null,
    primary key (serial, threshold_days)
);

-- The outbox also carries expiry notices, which belong to no escalation.
-- SQLite cannot drop a NOT NULL or change a CHECK in place: the table is
-- rebuilt with the same columns (0004 and 0005's) and indexes. Nothing
-- references it, so foreign keys stay on.
create table notifications_0012 (
    id              integer primary key autoincrement,
    escalation_id   integer references escalations (id),
    event           text    not null check (event in ('opened', 'escalated', 'expiring')),
    channel         text    not null check (channel in ('webhook', 'email')),
    target          text    not null,
    payload         text    not null,
    status          text    not null check (status in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    next_attempt_at integer not null,
    last_error      text,
    created_at      integer not null,
    delivered_at    integer,
    lease_owner     text,
    lease_until     bigint,
    check ((event = 'expiring') = (escalation_id is null))
);
insert into notifications_0012 (id, escalation_id, event, channel, target, payload, status, attempts,
                                next_attempt_at, last_error, created_at, delivered_at, lease_owner, lease_until)
select id, escalation_id, event, channel, target, payload, status, attempts,
       next_attempt_at, last_error, created_at, delivered_at, lease_owner, lease_until
from notifications;
drop table notifications;
alter table notifications_0012 rename to notifications;
create index notifications_due on notifications (status, next_attempt_at);
create index notifications_escalation on notifications (escalation_id);
