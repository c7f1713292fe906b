-- The outbox also carries the quarterly account review reminders (issue
-- 25), which belong to no escalation. SQLite cannot change a CHECK in
-- place: the table is rebuilt with the same columns and indexes as 0012
-- left it. Nothing references it, so foreign keys stay on. Kept in step
-- with the other dialect's 0024.
create table notifications_0024 (
    id              integer primary key autoincrement,
    escalation_id   integer references escalations (id),
    event           text    not null check (event in ('opened', 'escalated', 'expiring', 'review_due')),
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
    check ((event in ('expiring', 'review_due')) = (escalation_id is null))
);
insert into notifications_0024 (id, escalation_id, event, channel, target, payload, status, attempts,
                                next_attempt_at, last_error, created_at, delivered_at, lease_owner, lease_until)
select id, escalation_id, event, channel, target, payload, status, attempts,
       next_attempt_at, last_error, created_at, delivered_at, lease_owner, lease_until
from notifications;
drop table notifications;
alter table notifications_0024 rename to notifications;
create index notifications_due on notifications (status, next_attempt_at);
create index notifications_escalation on notifications (escalation_id);
