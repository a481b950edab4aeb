/**
 * The holder hears that someone would like to edit (`edit_request`): a polite status that
 * blocks nothing, with "Hand over" (release the token) and "Dismiss". The status element is
 * rendered (empty) for as long as the user holds the token, so a request is announced.
 */
import type { UserBrief } from '../api/types';
import { editRequestText } from '../realtime/writerNotices';

export interface EditRequestNoticeProps {
  from: UserBrief[];
  onHandOver: () => void;
  onDismiss: () => void;
}

export function EditRequestNotice({ from, onHandOver, onDismiss }: EditRequestNoticeProps) {
  const asked = from.length > 0;
  return (
    <div className={asked ? 'edit-request' : 'edit-request-idle'} data-testid="edit-request">
      <p role="status">{asked ? `${editRequestText(from)}.` : ''}</p>
      {asked && (
        <div className="actions">
          <button type="button" className="primary" onClick={onHandOver}>
            Hand over
          </button>
          <button type="button" onClick={onDismiss}>
            Dismiss
          </button>
        </div>
      )}
    </div>
  );
}
