-- Nothing un-revokes (issue 23): a CRL this service published lists a
-- certificate the database does not know (restored from a backup taken
-- before it was issued). Its revocation becomes a row of its own here, so
-- that every later CRL, OCSP answer and handshake keeps it revoked. Written
-- once, never updated or deleted. Kept in step with the other dialect's 0015.
create table recovered_revocations (
    serial        text    primary key,  -- lowercase hex, no colons
    ca_generation integer not null,
    status        text    not null check (status in ('on_hold', 'revoked', 'superseded')),
    reason        text    not null,
    revoked_at    integer  not null,
    -- No later than this: the issuing CA's own end (the certificate itself is lost).
    not_after     integer  not null,
    crl_number    integer  not null,  -- the kept CRL that listed it (0: an instance's index)
    recorded_at   integer  not null
);
