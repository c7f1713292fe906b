-- The outbox also carries the quarterly account review reminders (issue
-- 25), which belong to no escalation. Kept in step with the other
-- dialect's 0024.
alter table notifications drop constraint notifications_event_check;
alter table notifications add constraint notifications_event_check
    check (event in ('opened', 'escalated', 'expiring', 'review_due'));
alter table notifications drop constraint notifications_escalation_by_event;
alter table notifications add constraint notifications_escalation_by_event
    check ((event in ('expiring', 'review_due')) = (escalation_id is null));
