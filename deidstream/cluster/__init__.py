"""Scale-out on Ray: folders of video as Ray tasks on a local instance or an existing cluster."""

from deidstream.cluster.archive import RayJob, anonymize_directory_on_ray

__all__ = ["RayJob", "anonymize_directory_on_ray"]
