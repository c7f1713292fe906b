-- Who relies on us (issue 14): what each relying party (a client address,
-- or a configured name for a network) asked the OCSP responder about each
-- certificate and the CRLs it downloaded, and the handshakes each
-- certificate made on our listener. Written in batches from the counts in
-- memory; pruned after the retention period. Kept in step with the other
-- dialect's 0014.
create table rp_ocsp (
    party            text    not null,
    serial           text    not null,  -- no foreign key: a certificate may be erased first
    ca_generation    integer not null,
    queries          integer  not null,
    last_at          integer  not null,
    last_answer      text    not null check (last_answer in ('good', 'revoked', 'unknown')),
    last_good_at     integer,
    first_revoked_at integer,
    last_revoked_at  integer,
    primary key (party, serial)
);
create index rp_ocsp_serial on rp_ocsp (serial);
create index rp_ocsp_last_at on rp_ocsp (last_at);

create table rp_crl (
    party         text    not null,
    ca_generation integer not null,
    crl_number    integer  not null,
    this_update   integer  not null,
    downloads     integer  not null,
    first_at      integer  not null,
    last_at       integer  not null,
    primary key (party, ca_generation, crl_number)
);
create index rp_crl_last_at on rp_crl (last_at);

create table cert_handshakes (
    serial           text    primary key,
    ok_count         integer  not null,
    last_ok_at       integer,
    last_ok_from     text,
    refused_count    integer  not null,
    first_refused_at integer,
    last_refused_at  integer
);
