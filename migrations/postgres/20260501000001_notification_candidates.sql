-- Notification candidates: the CA certificates of served chains that expire soon are few
-- among many leaves; this keeps them one small index range apart.
CREATE INDEX certificates_ca_not_after ON certificates (not_after) WHERE is_ca;
