-- Revocation (issue 4). Kept in step with the other dialect's 0002.

-- The change feed: one row for every change of a certificate's status, in
-- commit order within an instance. Every instance (and the CLI) applies it to
-- its in-memory index, so a revocation made anywhere is seen everywhere.
create table cert_events (
    id          integer primary key autoincrement,
    serial      text    not null references certificates (serial),
    status      text    not null check (status in ('valid', 'on_hold', 'revoked', 'superseded')),
    reason      text,
    at          integer not null
);

-- The CRL number: one row, only ever increased, shared by all instances.
create table crl_state (
    id          integer primary key check (id = 1),
    crl_number  integer not null
);
insert into crl_state (id, crl_number) values (1, 0);

-- Scheduled retirements are found by time.
create index users_retire_at on users (retire_at);
