-- Certificate lifetimes per facility and per enrollment channel (issue 26):
-- a device a device-management system enrolled (EST) is managed and gets
-- the short lifetime, renewing itself at half-life; a facility may have its
-- own lifetimes for either channel (null: the service's).
-- Kept in step with the other dialect's 0025.
alter table devices add column managed integer not null default 0;
alter table facilities add column lifetime_days integer;
alter table facilities add column managed_lifetime_days integer;
