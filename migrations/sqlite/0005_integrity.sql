-- Revocation under races and several instances (issue 8). Kept in step with
-- the other dialect's 0005.

-- The feed position the newest numbered CRL was built from: a CRL number is
-- handed out only to an index at least that new.
alter table crl_state add column position bigint not null default 0;

-- The notification outbox is leased: an instance takes a row for a while
-- before delivering it, so no two instances send the same notification.
alter table notifications add column lease_owner text;
alter table notifications add column lease_until bigint;
