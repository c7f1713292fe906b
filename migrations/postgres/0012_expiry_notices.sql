-- Expiry notices (issue 12): the thresholds each certificate (a device's, or
-- the root or issuing CA's) was announced at, written in the transaction
-- that queues the e-mails, so every threshold is announced once across
-- restarts and instances. Kept in step with the other dialect's 0012.
create table expiry_notices (
    serial         text    not null,  -- no foreign key: the CA certificates are not in `certificates`
    threshold_days integer not null,
    subject        text    not null check (subject in ('device', 'root', 'issuing')),
    not_after      bigint  not null,
    sent_at        bigint  not null,
    primary key (serial, threshold_days)
);

-- The outbox also carries expiry notices, which belong to no escalation.
alter table notifications alter column escalation_id drop not null;
alter table notifications drop constraint notifications_event_check;
alter table notifications add constraint notifications_event_check
    check (event in ('opened', 'escalated', 'expiring'));
alter table notifications add constraint notifications_escalation_by_event
    check ((event = 'expiring') = (escalation_id is null));
