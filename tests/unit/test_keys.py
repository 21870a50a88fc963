import pytest

from audiomixer.store import keys

TENANT = "acme"
PID = "0123456789abcdef0123456789abcdef"


def test_keys_are_built_from_ids_only():
    assert keys.project_source(TENANT, PID) == f"acme/projects/{PID}/source.flac"
    assert keys.stem(TENANT, PID, "drums") == f"acme/projects/{PID}/stems/drums.flac"
    assert keys.stem_analysis(TENANT, PID, "bass") == f"acme/projects/{PID}/analysis/bass.json"
    assert keys.sound_audio(TENANT, PID) == f"acme/library/{PID}/sound.flac"
    assert keys.mix_output(TENANT, PID, "mp3") == f"acme/mixes/{PID}/mix.mp3"
    assert keys.upload(TENANT, "stem", PID, "vocals") == f"uploads/acme/stem/{PID}/vocals"


@pytest.mark.parametrize(
    "tenant, object_id",
    [("../etc", PID), ("acme", "../../x"), ("ACME", PID), ("acme", PID.upper()), ("a/b", PID), ("", PID)],
)
def test_unsafe_parts_are_refused(tenant, object_id):
    with pytest.raises(ValueError):
        keys.project_source(tenant, object_id)


def test_upload_keys_round_trip_and_refuse_strangers():
    parsed = keys.UploadKey.parse(keys.upload(TENANT, "stem", PID, "bass"))
    assert (parsed.tenant_id, parsed.kind, parsed.object_id, parsed.stem) == (TENANT, "stem", PID, "bass")
    parsed = keys.UploadKey.parse(keys.upload(TENANT, "base-track", PID))
    assert (parsed.kind, parsed.stem) == ("base-track", None)
    for bad in [
        f"uploads/acme/base-track/{PID}/extra",
        f"uploads/acme/stem/{PID}/kazoo",
        f"uploads/acme/unknown/{PID}",
        f"acme/projects/{PID}/source.flac",
        "uploads/acme/base-track/short",
        f"uploads/../base-track/{PID}",
    ]:
        with pytest.raises(ValueError):
            keys.UploadKey.parse(bad)
    assert keys.is_id(keys.new_id())
