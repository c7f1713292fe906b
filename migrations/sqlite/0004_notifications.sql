-- Notifications of emergencies (issue 5): an outbox written in the same
-- transaction as the escalation, delivered (and retried) by a worker, and
-- kept as the delivery log. Kept in step with the other dialect's 0004.
create table notifications (
    id              integer primary key autoincrement,
    escalation_id   integer not null references escalations (id),
    event           text    not null check (event in ('opened', 'escalated')),
    channel         text    not null check (channel in ('webhook', 'email')),
    target          text    not null,
    payload         text    not null,
    status          text    not null check (status in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    next_attempt_at integer not null,
    last_error      text,
    created_at      integer not null,
    delivered_at    integer
);
create index notifications_due on notifications (status, next_attempt_at);
create index notifications_escalation on notifications (escalation_id);
