-- A renewal from the browser hands its file to a person who still has to
-- install it (issue 25): the certificate it replaces stays valid until the
-- new one is first used (a handshake, or a relying party asking OCSP about
-- it), and at the latest until due_at. One row per waiting handover; the
-- row goes when the old certificate is superseded or the handover is
-- forgotten. Kept in step with the other dialect's 0022.
create table handovers (
    new_serial text     primary key references certificates (serial),
    old_serial text     not null references certificates (serial),
    device_id  integer  not null references devices (id),
    created_at integer  not null,
    due_at     integer  not null
);
create index handovers_old on handovers (old_serial);
create index handovers_device on handovers (device_id, created_at);
