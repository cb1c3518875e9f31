"""The test-only extension (built by `make test`, never installed): the fake
hardware backend (_hardware_fake), UpidCell, PacedPoster and half_post
(_cells). tests/_testcore/build.py builds it in place."""
