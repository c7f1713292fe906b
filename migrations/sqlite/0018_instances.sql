-- "On every instance" (issue 23): each running instance records the feed
-- position it has applied, as a heartbeat. With the option
-- revoke_waits_for_every_instance on, a revoke answers once every live
-- instance has applied it, or names those that did not. Rows of instances
-- gone for a day are removed by the others. Kept in step with the other
-- dialect's 0018.
create table instances (
    id         text    primary key,  -- host/pid-random, made at start
    applied    integer  not null,     -- feed position the instance's index reflects
    seen_at    integer  not null,     -- database clock, milliseconds
    started_at integer  not null      -- database clock, milliseconds
);
