-- The pools as the scheduling process last counted them, for `ppacer-async pools`:
-- each pool's slots, the attempts holding them and the attempts waiting for one.
CREATE TABLE pools (
    name TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    used INTEGER NOT NULL,
    waiting INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
