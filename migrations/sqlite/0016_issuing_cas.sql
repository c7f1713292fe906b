-- Nothing un-revokes (issue 23): each issuing CA generation, recorded with
-- its certificate's SHA-256 the first time an instance serves it. Several
-- instances share one database; two hosts that each ran `ca rollover` would
-- each have a different "issuing-2", and each would publish a CRL the other's
-- certificates are not on. An instance whose CA differs from the one recorded
-- for its generation refuses to start. Kept in step with the other dialect's 0016.
create table issuing_cas (
    generation  integer primary key,
    sha256      text    not null,  -- of the certificate's DER, as openssl prints it (AB:CD:…)
    recorded_at integer  not null
);
