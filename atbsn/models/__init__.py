"""Models on the fused ops: AT-BSN and its student (official-checkpoint compatible), and DBSN
(AP-BSN's dilated BSN with PD run as dilation)."""

from atbsn.models.atbsn import ATBSN, NBSN, TEACHER_HOLES
from atbsn.models.checkpoint import Distilled, init_student_from_teacher, load_official, model_from_state_dict
from atbsn.models.dbsn import DBSN

__all__ = ["ATBSN", "DBSN", "Distilled", "NBSN", "TEACHER_HOLES", "init_student_from_teacher", "load_official", "model_from_state_dict"]
