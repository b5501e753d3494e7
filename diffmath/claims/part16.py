"""Part 16 (kexue.fm 9467): the W-distance is bounded by score matching. Claims C16.*."""
