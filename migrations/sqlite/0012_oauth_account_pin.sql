-- Which Airwallex account an authorization may bring back, decided when it starts:
-- 'unless_disconnected' (a merchant's own), 'always' (a connect session, and a merchant
-- signed in by one), 'free' (a connect session that allows the change).
ALTER TABLE oauth_states ADD COLUMN account_pin TEXT;
