-- Wrong secrets are counted per enrollment code and source (issue 24): a
-- stranger's guesses at a code lock it for the stranger's address only, and
-- its owner's right code from another address still works. The code's own
-- failed_attempts stays the total, for the record. Kept in step with the
-- other dialect's 0020.
create table code_failures (
    code_id bigint not null references enrollment_codes (id),
    source  text   not null,  -- the client, as the audit log names it (public:<address>)
    failed  bigint not null,
    primary key (code_id, source)
);
