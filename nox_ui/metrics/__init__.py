"""Host metrics: collectors (psutil), one sampler per process, history tiers, the live bus."""
