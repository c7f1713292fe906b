-- Signed webhooks from device-management systems (issue 26): each accepted
-- signature is kept for the replay window, so the same request sent again
-- (by an attacker who saw it, or a retry after it was carried out) changes
-- nothing. Rows older than the window are deleted as new ones arrive.
-- Kept in step with the other dialect's 0026.
create table mdm_webhook_replays (
    sender_id bigint not null references users(id),
    signature text not null,
    seen_at bigint not null,
    primary key (sender_id, signature)
);
