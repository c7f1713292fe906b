-- Who relies on us (issue 14): what each relying party (a client address,
-- or a configured name for a network) asked the OCSP responder about each
-- certificate and the CRLs it downloaded, and the handshakes each
-- certificate made on our listener. Written in batches from the counts in
-- memory; pruned after the retention period. Kept in step with the other
-- dialect's 0014.
create table rp_ocsp (
    party            text   not null,
    serial           text   not null,  -- no foreign key: a certificate may be erased first
    ca_generation    bigint not null,
    queries          bigint not null,
    last_at          bigint not null,
    last_answer      text   not null check (last_answer in ('good', 'revoked', 'unknown')),
    last_good_at     bigint,
    first_revoked_at bigint,
    last_revoked_at  bigint,
    primary key (party, serial)
);
create index rp_ocsp_serial on rp_ocsp (serial);
create index rp_ocsp_last_at on rp_ocsp (last_at);

create table rp_crl (
    party         text   not null,
    ca_generation bigint  not null,
    crl_number    bigint not null,
    this_update   bigint not null,
    downloads     bigint not null,
    first_at      bigint not null,
    last_at       bigint not null,
    primary key (party, ca_generation, crl_number)
);
create index rp_crl_last_at on rp_crl (last_at);

create table cert_handshakes (
    serial           text    primary key,
    ok_count         bigint not null,
    last_ok_at       bigint,
    last_ok_from     text,
    refused_count    bigint not null,
    first_refused_at bigint,
    last_refused_at  bigint
);
