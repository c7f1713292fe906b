-- The emergency sign-in's throttle per account and source network (issue 10).
-- Kept in step with the other dialect's 0008.

-- Failed password checks of one source (an IPv4 address, an IPv6 /64) for one
-- account since it last succeeded; the source waits until blocked_until.
create table sign_in_sources (
    user_id         bigint not null references users (id),
    source          text    not null,
    failures        bigint not null,
    blocked_until   bigint,
    last_failure_at bigint not null,
    primary key (user_id, source)
);

-- users.failed_logins now counts the account's password checks in the window
-- that began at sign_in_window_start (the ceiling across all sources); the
-- single account-wide lock is gone, with its state.
alter table users add column sign_in_window_start bigint;
alter table users drop column locked_until;
update users set failed_logins = 0;
