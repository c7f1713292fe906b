-- The emergency page's second step (issue 11): after a person signs in, a
-- ticket good for one report within minutes lets them pick their device by
-- its label. Only the ticket's SHA-256 is kept. Kept in step with the other
-- dialect's 0011.
create table report_tickets (
    token_hash text    primary key,
    user_id    bigint not null references users (id),
    expires_at bigint not null
);
