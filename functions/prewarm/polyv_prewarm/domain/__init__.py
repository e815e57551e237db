"""The domain: files, fates and their rules (validate, dedup, chunk, the quota day), and the ports
the logic needs. Pure: no AWS, HTTP or Powertools imports."""
