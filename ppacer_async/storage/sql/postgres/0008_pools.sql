-- The pools as the scheduling process last counted them, for `ppacer-async pools`:
-- each pool's slots, the attempts holding them and the attempts waiting for one.
CREATE TABLE pools (
    name        text COLLATE "C" PRIMARY KEY,
    slots       integer     NOT NULL,
    used        integer     NOT NULL,
    waiting     integer     NOT NULL,
    updated_at  timestamptz NOT NULL
);
