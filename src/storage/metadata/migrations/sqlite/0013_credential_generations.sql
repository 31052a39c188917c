-- The generation of each user's credentials: a random value replaced when the
-- password changes, the user is removed or one of their access keys is
-- revoked. Refresh tokens and ECR login passwords carry the generation they
-- were issued under and stop working when it changes. Users declared in the
-- configuration have rows here too (their access keys can be revoked).
-- (From this version on, access_keys.secret holds the secret sealed with the
-- secrets key, not as is; Wharf seals rows left by older versions at start.)
CREATE TABLE credential_generations (
    subject     TEXT PRIMARY KEY,
    generation  TEXT NOT NULL
);
