-- Nothing un-revokes (issue 23): a random id made once, when the database
-- is created. Every instance reads it with each feed head; a different one
-- under a running instance (another database swapped in, a dump restored
-- into a new database) makes that instance fail closed, write back the
-- revocations its index holds and reload, as when the feed goes back. On
-- PostgreSQL the database's and the feed table's object ids are read with
-- it: a dump restored into the same database recreates the table. Kept in
-- step with the other dialect's 0017.
create table database_incarnation (
    id text not null
);
insert into database_incarnation (id) values (md5(random()::text || clock_timestamp()::text));
