-- Issuing CA rollover (issue 12): which generation of the issuing CA signed
-- each certificate, so that each CA's CRL and OCSP answers list only its
-- own. Generation 1 is the CA `init` made. Kept in step with the other
-- dialect's 0013.
alter table certificates add column ca_generation integer not null default 1;
