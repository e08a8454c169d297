import argparse

import pytest
from pydantic import ValidationError

from consumer import settings as s


def test_environment_then_flags_then_file_secrets(tmp_path):
    secret = tmp_path / "db"
    secret.write_text("postgresql://u:pw@db/x\n")
    env = {"CLAZZIFY_MAX_BATCH_SIZE": "32", "CLAZZIFY_DATABASE_URL_FILE": str(secret),
           "CLAZZIFY_INPUT_TOPIC": "from-env"}
    parser = argparse.ArgumentParser()
    s.add_arguments(parser)
    args = parser.parse_args(["--input-topic", "from-flag"])
    cfg = s.load(args, environ=env)
    assert cfg.max_batch_size == 32 and cfg.input_topic == "from-flag"
    assert cfg.database_url.get_secret_value() == "postgresql://u:pw@db/x"
    assert "pw" not in str(cfg.redacted()) and "pw" not in repr(cfg)


def test_invalid_values_are_rejected():
    with pytest.raises(ValidationError):
        s.Settings(max_batch_size=0)
    with pytest.raises(ValidationError):
        s.Settings(kafka_security_protocol="BOGUS")
    with pytest.raises(ValidationError):
        s.Settings(no_such_setting=1)


def test_sasl_ssl_config_path():
    cfg = s.Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc", kafka_sasl_password="pw",
                     kafka_sasl_mechanism="SCRAM-SHA-512", kafka_ssl_ca_location="/etc/ca.pem")
    conf = cfg.kafka_common_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "svc" and conf["sasl.password"] == "pw"
    assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert "sasl.password" not in s.Settings().kafka_common_config()
