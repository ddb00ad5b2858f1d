"""The provenance job in the real decoding sandbox: a file whose provenance cannot be read within
its ceiling fails that job alone, as a failure the fingerprint service records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from contentmatch_fingerprint import jobs
from contentmatch_fingerprint.signals.provenance import failed_provenance
from contentmatch_shared.decode_limits import MB, DecodeLimits
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.errors import MediaError
from contentmatch_shared.settings import Settings
from tests.fixtures import c2pa_media as cm


async def test_a_provenance_job_over_its_ceiling_fails_alone(tmp_path: Path) -> None:
    chain = cm.TestChain.new()
    signed = tmp_path / "signed.jpg"
    signed.write_bytes(cm.sign(cm.jpeg(), "image/jpeg", cm.created_manifest(), chain))
    limits = DecodeLimits.from_settings(Settings())
    starved = dataclasses.replace(limits, job_memory_bytes=1 * MB)
    # A budget larger than the probe's, so the job asks for it and is held to it.
    big = tmp_path / "big.jpg"
    big.write_bytes(signed.read_bytes() + b"\0" * (40 * MB))
    pool = SandboxPool("test", 1, limits)
    pool.start()
    try:
        with pytest.raises(MediaError) as exc:
            await pool.run(jobs.read_provenance_file, str(big), "image", starved)
        assert exc.value.code == "decode_memory_exceeded"
        provenance = failed_provenance("sandbox", exc.value)
        assert provenance.failures[0].code == "decode_memory_exceeded"
        assert not provenance.ai_generated
        # The next file in the same pool is read as usual.
        read = await pool.run(jobs.read_provenance_file, str(signed), "image", limits)
        assert [p.kind for p in read.evidence][:1] == ["ai_generated"]
        assert read.failures == []
    finally:
        pool.close()
