-- Which version of the terms of use (利用規約) each facility manager accepted
-- (issue 11). Kept in step with the other dialect's 0010.
create table terms_acceptances (
    user_id     bigint not null references users (id),
    version     text    not null,
    accepted_at bigint not null,
    primary key (user_id, version)
);
