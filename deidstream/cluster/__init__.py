"""Scale-out on Ray: folders of video as Ray tasks, long files in segments, on a local instance or a cluster."""

from deidstream.cluster.archive import RayJob, anonymize_directory_on_ray, anonymize_on_ray

__all__ = ["RayJob", "anonymize_directory_on_ray", "anonymize_on_ray"]
